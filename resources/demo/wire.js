// Shared by the demo pages: the "on the wire" log, a logged WebSocket, logged HTTP calls.

export const $ = (selector) => document.querySelector(selector);

/** Where this node's listeners are (the node answers with the ports it bound). */
export async function endpoints() {
  const response = await fetch("endpoints.json");
  return response.json();
}

const WIRE_MAX = 500;

/** Append one line to the wire log: kind is "out", "in", "http" or "event". */
export function wire(kind, text) {
  const log = $("#wire");
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = text;
  log.append(item);
  while (log.children.length > WIRE_MAX) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

/** Show a chat line; `kind` is "mine", "theirs" or "notice". */
export function say(kind, who, text) {
  const list = $("#messages");
  const item = document.createElement("li");
  item.className = kind;
  if (who) {
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    item.append(name);
  }
  item.append(document.createTextNode(text));
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

export function status(text, kind = "") {
  const element = $("#status");
  element.textContent = text;
  element.className = `status ${kind}`;
}

/** A WebSocket whose every frame, open and close goes to the wire log. */
export function socket(url, { onOpen = () => {}, onText = () => {}, onClose = () => {} } = {}) {
  wire("event", `connecting ${url}`);
  const ws = new WebSocket(url);
  ws.addEventListener("open", () => { wire("event", "open"); onOpen(); });
  ws.addEventListener("message", async (event) => {
    const text = typeof event.data === "string" ? event.data : await event.data.text();
    wire("in", text);
    onText(text);
  });
  ws.addEventListener("close", (event) => {
    wire("event", `closed ${event.code}${event.reason ? " " + event.reason : ""}`);
    onClose(event);
  });
  const send = ws.send.bind(ws);
  ws.send = (text) => { wire("out", text); send(text); };
  return ws;
}

/** POST a form (or GET with a query) and log both ways; answers the parsed JSON. */
export async function call(method, url, params = {}) {
  const body = new URLSearchParams(params);
  const target = method === "GET" ? `${url}?${body}` : url;
  wire("http", `${method} ${target}${method === "GET" ? "" : "  " + body}`);
  const response = await fetch(target, method === "GET" ? {} : { method, body });
  const text = await response.text();
  wire("http", `${response.status} ${text}`);
  try {
    return JSON.parse(text);
  } catch {
    return { status: response.status, text };
  }
}

/** Run `task` when `form` is submitted, without reloading the page. */
export function onSubmit(form, task) {
  $(form).addEventListener("submit", (event) => {
    event.preventDefault();
    task().catch((error) => status(String(error), "bad"));
  });
}
