#!/usr/bin/env python3
"""Runs every `js` example of Docs/API.md, as written, in headless Chromium against a live server.

Run by PlaygroundTests ("the examples in Docs/API.md") against a server whose model is a local fake. Each
example runs in a page of the server's own origin (so its relative URLs reach the server), as an inline
module, with only `http://localhost:3000` replaced by the server's address. The page gives each example
the free names it uses (`messages`, `showAdvice`, ...) as recorders, and appends one line after it that
copies what the example computed to `window` so it can be checked. The React examples run on Debian's
React 18 (node-react, node-react-dom), imported as "react" through an import map, and are driven as a
component would drive them. Prints one JSON object with what each example did; exits 1 with a message
when an example throws or never finishes.
"""
import argparse
import json
import re
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

REACT_UMD = "/usr/share/nodejs/react/umd/react.development.js"
REACT_DOM_UMD = "/usr/share/nodejs/react-dom/umd/react-dom.development.js"

STREAM_MESSAGES = [{"role": "user", "content": "list the employees with a 5-10% increment"}]
ADVISE_MESSAGES = [{"role": "user", "content": "put the employees in a spreadsheet"}]

PRELUDE = """
window.__errors = [];
addEventListener("error", (e) => __errors.push(String(e.message)));
addEventListener("unhandledrejection", (e) => __errors.push(String(e.reason && (e.reason.stack || e.reason))));
window.__logs = [];
console.log = (...args) => __logs.push(args.map((a) => (typeof a === "object" ? a : String(a))));
window.__calls = [];
const record = (name) => (...args) => { __calls.push({ name, args: JSON.parse(JSON.stringify(args)) }); };
window.messages = %(messages)s;
window.apiKey = undefined;
window.showAdvice = record("showAdvice");
window.openStream = record("openStream");
window.highlight = record("highlight");
window.readEvents = async (body) => {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) { const { value, done } = await reader.read(); if (done) break; text += value; }
  __calls.push({ name: "readEvents", args: [text] });
};
"""

# A component that uses a hook the example exported (copied to window.__hook), recording every render.
HOOK_APP = """
const { createElement } = window.React;
window.__renders = [];
function App() {
  const state = window.__hook();
  window.__state = state;
  window.__renders.push({ status: state.status ?? null, text: state.text, error: state.error ?? null });
  return createElement("p", { id: "out" }, state.text);
}
window.ReactDOM.createRoot(document.getElementById("root")).render(createElement(App));
"""


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def js_examples(markdown):
    return [m.group(1) for m in re.finditer(r"^```js\n(.*?)^```", markdown, flags=re.S | re.M)]


def page(example, base, messages, *, after="", react=False):
    code = example.replace("http://localhost:3000", base)
    parts = ["<!doctype html><html><head><meta charset=utf-8>",
             "<script>" + PRELUDE % {"messages": json.dumps(messages)} + "</script>"]
    if react:
        shim = ("data:text/javascript,const R = window.React; export default R; "
                "export const { useState, useEffect, useRef, useCallback, useMemo, useReducer } = R;")
        parts.append('<script type="importmap">' + json.dumps({"imports": {
            "react": shim, "./switchboard-client.js": base + "/client.js"}}) + "</script>")
        for path in (REACT_UMD, REACT_DOM_UMD):
            parts.append("<script>" + open(path, encoding="utf-8").read().replace("</script", "<\\/script") + "</script>")
    parts.append('<script type="module">\n' + code + "\n" + after + "\n</script>")
    parts.append('</head><body><div id="root"></div></body></html>')
    return "".join(parts)


class Runner:
    def __init__(self, driver, base):
        self.driver = driver
        self.base = base

    def load(self, html):
        # A page of the server's own origin, written over with the example (its CSP bypassed for the inline code).
        self.driver.get(self.base + "/health")
        self.driver.execute_script("document.open(); document.write(arguments[0]); document.close();", html)

    def wait(self, condition_js, what, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            errors = self.driver.execute_script("return window.__errors || []")
            if errors:
                fail(f"{what}: the page threw: {errors}")
            value = self.driver.execute_script("return " + condition_js)
            if value:
                return value
            time.sleep(0.02)
        state = self.driver.execute_script("return JSON.stringify({state: window.__state, calls: window.__calls, renders: (window.__renders || []).slice(-6)})")
        fail(f"{what}: not done within {timeout} s; the page had {state[:2000]}")

    def js(self, code):
        return self.driver.execute_script(code)

    def load_hook(self, example, base, hook, what):
        """A React example exporting `hook`, rendered by HOOK_APP; waits for its first render."""
        self.load(page(example, base, STREAM_MESSAGES, after=f"window.__hook = {hook};", react=True)
                  .replace("</head>", '<script type="module">' + HOOK_APP + "</script></head>"))
        self.wait("window.__state", f"{what} (render)")


def run_analyze(runner, example, base):
    seen = {}
    for name, messages in (("stream", STREAM_MESSAGES), ("advise", ADVISE_MESSAGES)):
        runner.load(page(example, base, messages, after="window.__done = { r };"))
        runner.wait("window.__done", f"the analyze example ({name})")
        seen[name] = {"calls": runner.js("return __calls"), "r": runner.js("return __done.r")}
    return seen


def run_client(runner, example, base):
    runner.load(page(example, base, STREAM_MESSAGES,
                     after="window.__done = { advice, text, complete, error, cancelled };"))
    runner.wait("window.__done", "the client example")
    return {"done": runner.js("return __done"), "logs": runner.js("return __logs")}


def run_routing(runner, example, base):
    seen = {}
    for name, messages in (("stream", STREAM_MESSAGES), ("advise", ADVISE_MESSAGES)):
        runner.load(page(example, base, messages, after="window.__done = true;"))
        runner.wait("window.__done && __calls.length > 0", f"the smart-routing example ({name})")
        seen[name] = runner.js("return __calls")
    return seen


def run_client_hook(runner, example, base):
    """send() a chat, then send() another while the first streams: the first is cancelled, the second finishes."""
    runner.load_hook(example, base, "useSwitchboardChat", "the React hook on the client")
    runner.js("window.__first = __state.send(messages);")
    runner.wait("__state.text === 'Working'", "the React hook on the client (first chat's text)")
    runner.js("window.__second = __state.send([{role: 'user', content: 'list the employees again'}]);"
              "window.__first.then((r) => { window.__firstResult = r; });"
              "window.__second.then((r) => { window.__secondResult = r; });")
    runner.wait("window.__secondResult && window.__firstResult && __state.status === 'done'",
                "the React hook on the client (second chat)")
    time.sleep(0.2)   # any late state update of the first chat would land now
    return {"renders": runner.js("return __renders"), "state": runner.js(
        "return { status: __state.status, text: __state.text, events: __state.events.map((e) => e.type), "
        "history: __state.history }"),
        "first": runner.js("return { cancelled: __firstResult.cancelled, text: __firstResult.text }"),
        "second": runner.js("return { cancelled: __secondResult.cancelled, text: __secondResult.text }")}


def run_reader_hook(runner, example, base):
    """send() a chat with a tool round and read text and tools; then send() one and cancel() it."""
    runner.load_hook(example, base, "useStreamChat", "the fetch-and-reader hook")
    runner.js("__state.send(messages).then(() => { window.__sent = true; });")
    runner.wait("window.__sent", "the fetch-and-reader hook (a chat with a tool)")
    time.sleep(0.1)
    finished = runner.js("return { text: __state.text, tools: __state.tools, error: __state.error }")
    texts = [r["text"] for r in runner.js("return __renders")]
    runner.js("window.__sent = false; __state.send(messages).then(() => { window.__sent = true; });")
    runner.wait("__state.text === 'Waiting'", "the fetch-and-reader hook (a chat to cancel)")
    runner.js("__state.cancel();")
    runner.wait("window.__sent", "the fetch-and-reader hook (cancel)")
    cancelled = runner.js("return { text: __state.text, error: __state.error }")
    return {"finished": finished, "texts": texts, "cancelled": cancelled}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--api-md", required=True)
    args = parser.parse_args()
    examples = js_examples(open(args.api_md, encoding="utf-8").read())

    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Page.setBypassCSP", {"enabled": True})
    runner = Runner(driver, args.base)
    # Each example, by what it is; an example this script does not know fails the test (so none goes untested).
    kinds = [("analyze", 'fetch("/mcp/chat/analyze"', run_analyze),
             ("client", "new Switchboard({ baseURL: \"http://localhost:3000\", apiKey })", run_client),
             ("clientHook", "export function useSwitchboardChat", run_client_hook),
             ("routing", 'fetch("/mcp/chat", {', run_routing),
             ("readerHook", "export function useStreamChat", run_reader_hook)]
    seen = {"examples": len(examples)}
    try:
        for example in examples:
            matches = [(name, run) for name, needle, run in kinds if needle in example]
            if len(matches) != 1:
                fail("an example in API.md this test does not know how to run:\n" + example[:400])
            name, run = matches[0]
            if name in seen:
                fail(f"two examples of the kind {name}")
            seen[name] = run(runner, example, args.base)
        print(json.dumps({"ok": True, **seen}))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
