// The playground page's script (GET /): the analysis, the routed chat's timeline, the answer.
import { Switchboard, SwitchboardError } from "./client.js";

const $ = (id) => document.getElementById(id);
let apiKey = null;          // this tab's memory only
let current = null;
let sessionId = null;       // the last chat's, for its feedback
let feedbackClient = null;

function setStatus(text, bad = false) {
  $("status").textContent = text;
  $("status").className = bad ? "status bad" : "status";
}

function definitionList(target, pairs) {
  target.replaceChildren();
  for (const [term, value] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dd.dataset.field = term;
    target.append(dt, dd);
  }
}

/** The query with every matched span marked; the rule that matched it on hover. */
function renderSpans(text, analysis) {
  const spans = [];
  for (const rule of analysis.matchedRules) {
    for (const match of rule.matches) {
      if (match.messageIndex === 0) spans.push({ ...match, rule });
    }
  }
  spans.sort((a, b) => a.start - b.start || b.end - a.end);
  const view = $("query-view");
  view.replaceChildren();
  let at = 0;
  for (const span of spans) {
    if (span.start < at) continue;   // overlapping another match: the first one shows
    view.append(document.createTextNode(text.slice(at, span.start)));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(span.start, span.end);
    mark.title = `${span.rule.id} (+${span.rule.weight})` + (span.rule.description ? `: ${span.rule.description}` : "");
    mark.dataset.rule = span.rule.id;
    view.append(mark);
    at = span.end;
  }
  view.append(document.createTextNode(text.slice(at)));
}

function describe(event) {
  switch (event.type) {
    case "session_start": return event.sessionId;
    case "routing": return `${event.complexity} → ${event.route}` + (event.model ? ` on ${event.provider}/${event.model}` : "")
      + (event.fallbackFrom ? ` (fell back from ${event.fallbackFrom}: ${event.reason})` : "");
    case "iteration_start": return `model call ${event.iteration}`;
    case "text_chunk": return JSON.stringify(event.chunk);
    case "thinking_chunk": return JSON.stringify(event.chunk);
    case "tool_detected": return event.tool;
    case "tools_executing": return event.tools.join(", ");
    case "tool_progress": return `${event.tool} ${event.status}` + (event.executionTime ? ` in ${event.executionTime}` : "")
      + (event.error ? ` — ${event.error}` : "");
    case "complete": return `${event.stopReason}, ${event.iterations} call(s)`;
    case "error": return `${event.code}: ${event.message}` + (event.retryable ? " (retryable)" : "");
    case "keepalive": return "keepalive comment";
    case "resumed": return `connection dropped; picked up again after event ${event.lastEventId}`;
    default: return "";
  }
}

function addRow(event, sinceStart, sincePrevious) {
  const row = document.createElement("tr");
  row.className = ["error", "keepalive", "resumed"].includes(event.type) ? event.type : "";
  row.dataset.type = event.type;
  const cells = [event.id ?? "", event.type, sinceStart.toFixed(0), sincePrevious.toFixed(0), describe(event)];
  cells.forEach((value, index) => {
    const cell = document.createElement("td");
    cell.textContent = String(value);
    if (index === 2 || index === 3) cell.className = "num";
    if (index === 4) addToolDetails(cell, event);
    row.append(cell);
  });
  $("timeline").append(row);
}

/** With tool details on: the call's input or result under the timeline's row, collapsed. */
function addToolDetails(cell, event) {
  if (event.type !== "tool_progress") return;
  const shown = event.input !== undefined ? ["input", JSON.stringify(event.input, null, 2)]
    : event.result !== undefined ? ["result" + (event.resultTruncated ? " (cut)" : ""), event.result] : null;
  if (!shown) return;
  const details = document.createElement("details");
  details.className = "tool-details";
  const summary = document.createElement("summary");
  summary.textContent = shown[0];
  const pre = document.createElement("pre");
  pre.textContent = shown[1];
  details.append(summary, pre);
  cell.append(details);
}

async function send(event) {
  event.preventDefault();
  const text = $("query").value.trim();
  if (!text) return;
  if (!$("key-box").hidden) apiKey = $("key").value.trim() || null;
  const client = new Switchboard({ apiKey });
  const messages = [{ role: "user", content: text }];
  sessionId = null;
  $("timeline").replaceChildren();
  $("answer").textContent = "";
  $("thinking").textContent = "";
  $("advice").replaceChildren();
  $("totals").replaceChildren();
  $("feedback").hidden = true;
  $("feedback-status").textContent = "";
  setStatus("analysing…");
  let analysis;
  try {
    analysis = await client.analyze(messages);
  } catch (error) {
    if (error instanceof SwitchboardError && error.status === 401) {
      $("key-box").hidden = false;
      $("key").focus();
      setStatus(apiKey ? "that key was refused" : "enter an API key, then send again", true);
      return;
    }
    setStatus(error.message, true);
    return;
  }
  definitionList($("analysis"), [
    ["level", analysis.complexity], ["score", String(analysis.score)], ["route", analysis.route],
    ["model", analysis.model ? `${analysis.provider}/${analysis.model}` : "— (advice)"],
    ["estimate", `${analysis.estimatedSeconds} s`],
    ["rules", analysis.matchedRules.map((rule) => rule.id).join(", ") || "none"],
  ]);
  renderSpans(text, analysis);

  const started = performance.now();
  let previous = started;
  let firstText = null;
  $("send").disabled = true;
  $("cancel").disabled = false;
  $("drop").disabled = false;
  setStatus("streaming…");
  current = client.chat(messages, {
    keepalives: true,
    toolDetails: $("opt-details").checked,
    thinking: $("opt-thinking").checked ? 2048 : undefined,
    onEvent(event) {
      const now = performance.now();
      addRow(event, now - started, now - previous);
      previous = now;
      if (event.type === "session_start") sessionId = event.sessionId;
      if (event.type === "thinking_chunk") $("thinking").append(document.createTextNode(event.chunk));
      if (event.type === "text_chunk") {
        if (firstText === null) firstText = now - started;
        $("answer").append(document.createTextNode(event.chunk));
      }
      if (event.type === "routing" && event.action === "advise" && event.message) {
        const advice = document.createElement("div");
        advice.className = "advice";
        advice.textContent = event.message;
        $("advice").replaceChildren(advice);
      }
    },
  });
  const result = await current.result;
  const duration = performance.now() - started;
  $("send").disabled = false;
  $("cancel").disabled = true;
  $("drop").disabled = true;
  const usage = result.complete?.usage;
  definitionList($("totals"), [
    ["events", String(result.events.length)],
    ["first text", firstText === null ? "—" : `${firstText.toFixed(0)} ms`],
    ["duration", `${duration.toFixed(0)} ms`],
    ["tokens", usage ? `${usage.inputTokens} in, ${usage.outputTokens} out` + (usage.cacheReadTokens ? `, ${usage.cacheReadTokens} cached` : "") : "—"],
    ...(result.complete?.costUSD !== undefined && result.complete ? [["cost", `$${result.complete.costUSD}`]] : []),
  ]);
  if (result.cancelled) setStatus("cancelled");
  else if (result.error) setStatus(result.error.message, true);
  else setStatus("done");
  // A finished stream can be rated, for the operator's review of misroutes (advice has no stream to rate).
  feedbackClient = client;
  $("feedback").hidden = !(result.complete && sessionId && result.complete.stopReason !== "advise");
}

/** Sends the user's verdict on the last chat (POST /mcp/chat/feedback). */
async function sendFeedback(rating) {
  const expectedLevel = $("feedback-level").value || undefined;
  try {
    await feedbackClient.feedback(sessionId, rating, { expectedLevel });
    $("feedback-status").textContent = "thanks: the operator's review will hear it";
  } catch (error) {
    $("feedback-status").textContent = error.message;
  }
}

$("form").addEventListener("submit", send);
$("feedback-up").addEventListener("click", () => sendFeedback("up"));
$("feedback-down").addEventListener("click", () => sendFeedback("down"));
$("cancel").addEventListener("click", () => current?.cancel());
$("drop").addEventListener("click", () => current?.dropConnection());
