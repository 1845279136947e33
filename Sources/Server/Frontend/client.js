// Switchboard's browser client: one dependency-free ES module, served by the server at /client.js.
//
//   import { Switchboard } from "/client.js";
//   const sb = new Switchboard({ apiKey });                    // baseURL defaults to this page's server
//   const advice = await sb.analyze(messages);                  // the preflight
//   const chat = sb.chat(messages, { onEvent: e => render(e) }); // smart routing (POST /mcp/chat)
//   for await (const event of chat) { … }                       // or iterate the events
//   chat.cancel();                                              // stop: the server stops the model and tools
//   const { text, complete, error } = await chat.result;
//   await sb.feedback(sessionId, "down", { expectedLevel: "complex" });  // for the operator's review
//
// Events are those of Docs/STREAMING.md, typed below; every one has `type`, `id` and `timestamp`.

/**
 * @typedef {{type: "session_start", id: number, timestamp: string, sessionId: string, traceId?: string, message: string}} SessionStartEvent
 * @typedef {{type: "routing", id: number, timestamp: string, complexity: string, score: number, route: string,
 *   action: "stream" | "advise", provider: string | null, model: string | null, message: string | null,
 *   matchedRules: string[], rulesVersion: string, fallbackFrom?: string, reason?: string}} RoutingEvent
 * @typedef {{type: "iteration_start", id: number, timestamp: string, iteration: number}} IterationStartEvent
 * @typedef {{type: "text_chunk", id: number, timestamp: string, chunk: string, accumulated?: string}} TextChunkEvent
 * @typedef {{type: "thinking_chunk", id: number, timestamp: string, chunk: string}} ThinkingChunkEvent
 * @typedef {{type: "tool_detected", id: number, timestamp: string, tool: string, toolUseId: string, message: string}} ToolDetectedEvent
 * @typedef {{type: "tools_executing", id: number, timestamp: string, count: number, tools: string[]}} ToolsExecutingEvent
 * @typedef {{type: "tool_progress", id: number, timestamp: string, tool: string, toolUseId: string,
 *   status: "executing" | "completed" | "failed", progress: {current: number, total: number},
 *   executionTime?: string, executionTimeMs?: number, error?: string, truncated?: boolean,
 *   input?: object, result?: string, resultTruncated?: boolean}} ToolProgressEvent
 * @typedef {{inputTokens: number, outputTokens: number, cacheReadTokens: number, cacheWriteTokens: number}} Usage
 * @typedef {{type: "complete", id: number, timestamp: string, iterations: number, stopReason: string,
 *   totalTimeMs: number, usage: Usage, costUSD?: number, messages?: Message[]}} CompleteEvent
 * @typedef {{type: "error", id: number, timestamp: string, code: string, message: string, retryable: boolean}} ErrorEvent
 * @typedef {SessionStartEvent | RoutingEvent | IterationStartEvent | TextChunkEvent | ThinkingChunkEvent | ToolDetectedEvent |
 *   ToolsExecutingEvent | ToolProgressEvent | CompleteEvent | ErrorEvent} StreamEvent
 * @typedef {{type: "keepalive", receivedAt: number}} KeepaliveEvent
 * @typedef {{type: "resumed", lastEventId: number, attempt: number, receivedAt: number}} ResumedEvent
 * @typedef {{role: "user" | "assistant", content: string | object[]}} Message
 * @typedef {{text: string, events: StreamEvent[], complete: CompleteEvent | null, error: ErrorEvent | SwitchboardError | null,
 *   cancelled: boolean}} ChatResult
 */

/** An error answer of the API (a 4xx or 5xx with `{"error": {code, message, field}}`), or a failed connection. */
export class SwitchboardError extends Error {
  /** @param {number} status @param {string} code @param {string} message @param {string | null} [field] @param {number | null} [retryAfter] */
  constructor(status, code, message, field = null, retryAfter = null) {
    super(message);
    this.name = "SwitchboardError";
    /** HTTP status; 0 when the server could not be reached. */
    this.status = status;
    this.code = code;
    /** The request field at fault, when the server names one. */
    this.field = field;
    /** Seconds to wait before trying again, from `Retry-After`. */
    this.retryAfter = retryAfter;
  }
}

/**
 * Server-Sent Events, parsed as the HTML standard says: lines end in CRLF, LF or CR; a chunk may end anywhere
 * (even between CR and LF, or inside a UTF-8 character when fed bytes); `data:` lines of one event join with
 * "\n"; lines starting with ":" are comments; a blank line ends the event.
 */
export class SSEParser {
  constructor() {
    this.decoder = new TextDecoder();
    this.line = "";
    this.afterCR = false;
    this.reset();
  }

  reset() {
    /** @type {string[]} */
    this.data = [];
    this.event = "";
    this.id = null;
  }

  /**
   * Feeds text or bytes; returns the events and comments completed by it.
   * @param {string | Uint8Array} chunk
   * @returns {Array<{event: string, data: string, id: string | null} | {comment: string}>}
   */
  push(chunk) {
    const text = typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    const out = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.afterCR) {
        // The LF of a CRLF, even when the chunk ended between the two: the CR already ended the line.
        this.afterCR = false;
        if (c === 10) { start = i + 1; continue; }
      }
      if (c === 10 || c === 13) {
        this.takeLine(this.line + text.slice(start, i), out);
        this.line = "";
        this.afterCR = c === 13;
        start = i + 1;
      }
    }
    this.line += text.slice(start);
    return out;
  }

  /** @param {string} line @param {any[]} out */
  takeLine(line, out) {
    if (line === "") {
      if (this.data.length > 0) out.push({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
      this.reset();
      return;
    }
    if (line.charCodeAt(0) === 58) { // ":"
      out.push({ comment: line.slice(1).trimStart() });
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

/** A chat being streamed: iterate it for its events, or await `result`; `cancel()` stops it. */
export class ChatStream {
  /** @param {(stream: ChatStream) => Promise<void>} run @param {AbortController} controller */
  constructor(run, controller) {
    this.controller = controller;
    /** @type {AbortController | null} the current connection's */
    this.connection = null;
    /** @type {StreamEvent[]} */
    this.events = [];
    this.text = "";
    /** @type {CompleteEvent | null} */
    this.complete = null;
    /** @type {ErrorEvent | SwitchboardError | null} */
    this.error = null;
    this.cancelled = false;
    /** @type {Array<(value: IteratorResult<StreamEvent>) => void>} */
    this.waiting = [];
    this.read = 0;
    this.finished = false;
    /** @type {Promise<ChatResult>} */
    this.result = run(this).catch((error) => {
      if (this.cancelled || error?.name === "AbortError") { this.cancelled = true; return; }
      this.error = error instanceof SwitchboardError ? error : new SwitchboardError(0, "network_error", String(error?.message ?? error));
    }).then(() => {
      this.finished = true;
      for (const wake of this.waiting.splice(0)) wake({ value: undefined, done: true });
      return { text: this.text, events: this.events, complete: this.complete, error: this.error, cancelled: this.cancelled };
    });
  }

  /** Drops the connection without stopping the chat (a resumable chat picks it up again): for trying resume. */
  dropConnection() {
    this.connection?.abort();
  }

  /** Stops the chat: the connection closes, and the server stops the model call and the tools. */
  cancel() {
    if (this.cancelled) return;
    this.cancelled = true;
    this.onCancel?.();
    this.controller.abort();
  }

  /** @param {StreamEvent} event */
  deliver(event) {
    this.events.push(event);
    if (event.type === "text_chunk") this.text += event.chunk;
    else if (event.type === "complete") this.complete = event;
    else if (event.type === "error") this.error = event;
    const wake = this.waiting.shift();
    if (wake) { this.read++; wake({ value: event, done: false }); }
  }

  [Symbol.asyncIterator]() {
    return {
      next: () => {
        if (this.read < this.events.length) return Promise.resolve({ value: this.events[this.read++], done: false });
        if (this.finished) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.waiting.push(resolve));
      },
      return: () => { this.cancel(); return Promise.resolve({ value: undefined, done: true }); },
    };
  }
}

export class Switchboard {
  /**
   * @param {{baseURL?: string, apiKey?: string | null, fetch?: typeof fetch}} [options]
   *   `baseURL`: the server (default: this page's origin); `apiKey`: sent as `Authorization: Bearer`.
   */
  constructor({ baseURL = "", apiKey = null, fetch: fetchFunction = globalThis.fetch.bind(globalThis) } = {}) {
    this.baseURL = baseURL.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.fetch = fetchFunction;
  }

  /** @param {Record<string, string>} [extra] */
  headers(extra = {}) {
    const headers = { "Content-Type": "application/json", ...extra };
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    return headers;
  }

  /** @param {Response} response @returns {Promise<SwitchboardError>} */
  static async failure(response) {
    let body = null;
    try { body = await response.json(); } catch { /* not JSON */ }
    const error = body?.error ?? {};
    const retryAfter = Number(response.headers.get("Retry-After")) || null;
    return new SwitchboardError(response.status, error.code ?? "http_" + response.status,
                                error.message ?? response.statusText, error.field ?? null, retryAfter);
  }

  /**
   * The preflight: how the server would route these messages, with the matched rules and spans.
   * @param {Message[]} messages @param {{route?: string, signal?: AbortSignal}} [options]
   */
  async analyze(messages, { route, signal } = {}) {
    const response = await this.fetch(this.baseURL + "/mcp/chat/analyze", {
      method: "POST", headers: this.headers(), body: JSON.stringify(route ? { messages, route } : { messages }), signal,
    });
    if (!response.ok) throw await Switchboard.failure(response);
    return response.json();
  }

  /**
   * Tells the server how a finished chat went, for the operator's review of misroutes (`POST /mcp/chat/feedback`):
   * `rating` "up" or "down", with the level it should have had and a comment (1,000 characters at most).
   * @param {string} sessionId `session_start`'s sessionId
   * @param {"up" | "down"} rating
   * @param {{expectedLevel?: string, comment?: string, signal?: AbortSignal}} [options]
   */
  async feedback(sessionId, rating, { expectedLevel, comment, signal } = {}) {
    const body = { sessionId, rating };
    if (expectedLevel) body.expectedLevel = expectedLevel;
    if (comment) body.comment = comment;
    const response = await this.fetch(this.baseURL + "/mcp/chat/feedback", {
      method: "POST", headers: this.headers(), body: JSON.stringify(body), signal,
    });
    if (!response.ok) throw await Switchboard.failure(response);
  }

  /**
   * Streams a chat. With `routed` (the default) it goes through smart routing (`POST /mcp/chat`): an advice
   * route answers as a short stream (`routing` with its message, then `complete` with `stopReason: "advise"`).
   * With `resumable` (the default) a dropped connection is picked up again: the server keeps the chat running,
   * and the client asks for the events after the last one it got (`GET /mcp/chat/stream/{sessionId}` with
   * `Last-Event-ID`), up to `maxResumes` times, telling `onEvent` `{type: "resumed"}` each time. No event is lost
   * or repeated.
   * @param {Message[]} messages
   * @param {{routed?: boolean, route?: string, model?: string, maxTokens?: number, signal?: AbortSignal,
   *   onEvent?: (event: StreamEvent | KeepaliveEvent | ResumedEvent) => void, keepalives?: boolean,
   *   resumable?: boolean, maxResumes?: number, toolDetails?: boolean, thinking?: number, returnMessages?: boolean}} [options]
   *   `toolDetails`: tool_progress carries each call's input and result; `thinking`: a budget in tokens (from 1024),
   *   the model's thinking arrives as thinking_chunk events; `returnMessages`: the result's `complete.messages` are
   *   the turns this chat added, to append to the history (see `history` in Docs/API.md).
   *   `onEvent` hears every event as it arrives (and keepalive comments with `keepalives: true`).
   * @returns {ChatStream}
   */
  chat(messages, { routed = true, route, model, maxTokens, signal, onEvent, keepalives = false, resumable = true,
                   maxResumes = 5, toolDetails = false, thinking, returnMessages = false } = {}) {
    const controller = new AbortController();
    if (signal) {
      if (signal.aborted) controller.abort();
      else signal.addEventListener("abort", () => controller.abort(), { once: true });
    }
    const body = { messages, accumulated: false };
    if (route) body.route = route;
    if (model) body.model = model;
    if (maxTokens) body.maxTokens = maxTokens;
    if (resumable) body.resumable = true;
    if (toolDetails) body.toolDetails = true;
    if (thinking) body.thinking = { budgetTokens: thinking };
    if (returnMessages) body.returnMessages = true;
    const path = routed ? "/mcp/chat" : "/mcp/chat/stream";
    return new ChatStream(async (stream) => {
      let lastId = 0;
      let sessionId = null;
      let resumes = 0;
      /** One connection's fetch, aborted by a cancel or by `dropConnection()`. */
      const connect = (url, init) => {
        const connection = new AbortController();
        stream.connection = connection;
        if (controller.signal.aborted) connection.abort();
        controller.signal.addEventListener("abort", () => connection.abort(), { once: true });
        return this.fetch(url, { ...init, signal: connection.signal });
      };
      // A resumable chat outlives its connection: cancelling it asks the server to stop it.
      stream.onCancel = () => {
        if (!sessionId) return;
        this.fetch(`${this.baseURL}/mcp/chat/stream/${encodeURIComponent(sessionId)}`, {
          method: "DELETE", headers: this.headers(), keepalive: true,
        }).catch(() => {});
      };
      let response = await connect(this.baseURL + path, {
        method: "POST", headers: this.headers({ Accept: "text/event-stream" }), body: JSON.stringify(body),
      });
      if (!response.ok) throw await Switchboard.failure(response);
      for (;;) {
        try {
          const parser = new SSEParser();
          const reader = response.body.getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            for (const item of parser.push(value)) {
              if ("comment" in item) {
                if (keepalives && onEvent) onEvent({ type: "keepalive", receivedAt: Date.now() });
                continue;
              }
              let event;
              try { event = JSON.parse(item.data); } catch { continue; }
              if (item.id !== null) event.id = Number(item.id);
              if (event.id !== undefined) {
                if (event.id <= lastId) continue;      // already delivered
                lastId = event.id;
              }
              if (event.type === "session_start") sessionId = event.sessionId;
              stream.deliver(event);
              if (onEvent) onEvent(event);
            }
          }
          if (stream.complete || stream.error || !resumable || !sessionId) return;
          throw new SwitchboardError(0, "connection_closed", "the stream ended before its last event");
        } catch (error) {
          if (stream.cancelled || controller.signal.aborted) throw error;
          if (!resumable || !sessionId || resumes >= maxResumes) throw error;
          resumes++;
          await new Promise((wake) => setTimeout(wake, resumes === 1 ? 0 : Math.min(250 * 2 ** (resumes - 2), 4000)));
          response = await connect(`${this.baseURL}/mcp/chat/stream/${encodeURIComponent(sessionId)}`, {
            method: "GET", headers: this.headers({ Accept: "text/event-stream", "Last-Event-ID": String(lastId) }),
          }).catch((failure) => failure);
          if (response instanceof Error) continue;
          if (!response.ok) throw await Switchboard.failure(response);
          if (onEvent) onEvent({ type: "resumed", lastEventId: lastId, attempt: resumes, receivedAt: Date.now() });
        }
      }
    }, controller);
  }
}
