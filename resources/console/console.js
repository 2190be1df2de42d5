// The operators' console: everything below comes from the admin API (/admin/...) and /metrics,
// called with the admin token the operator typed. The token stays in this tab (sessionStorage).
const $ = (selector) => document.querySelector(selector);
const TOKEN_KEY = "heihei-admin-token";
// how often the connection chart asks /metrics, and how much of it the chart keeps
const POLL_MS = 2000;
const CHART_POINTS = 150;
const REALMS = ["live", "boss", "jim", "channel"];
const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706"];

let token = sessionStorage.getItem(TOKEN_KEY) || "";
let timer = null;
let chart = null;
const series = [[], ...REALMS.map(() => [])];

class Refused extends Error {}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${token}` } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (response.status === 401) throw new Refused("the node refused the token (401)");
  const answer = response.headers.get("content-type")?.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error(answer.error || `${response.status}`);
  return answer;
}

function toast(text, bad = false) {
  const element = $("#toast");
  element.textContent = text;
  element.className = bad ? "shown bad" : "shown";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { element.className = ""; }, 3000);
}

/** Run an operator action, show its outcome, refresh what it changed. */
async function act(what, task, refresh) {
  try {
    await task();
    toast(what);
    if (refresh) await refresh();
  } catch (error) {
    if (error instanceof Refused) return signOut(error.message);
    toast(`${what} failed: ${error.message}`, true);
  }
}

function row(cells, actions = []) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    td.textContent = cell;
    tr.append(td);
  }
  const td = document.createElement("td");
  for (const [label, handler, kind] of actions) td.append(button(label, handler, kind));
  tr.append(td);
  return tr;
}

function item(text, actions = []) {
  const li = document.createElement("li");
  const span = document.createElement("span");
  span.className = "grow";
  span.textContent = text;
  li.append(span);
  for (const [label, handler, kind] of actions) li.append(button(label, handler, kind));
  return li;
}

function button(label, handler, kind = "quiet") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = kind;
  b.addEventListener("click", handler);
  return b;
}

function onSubmit(selector, task) {
  $(selector).addEventListener("submit", (event) => { event.preventDefault(); task(); });
}

const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : "");

function duration(seconds) {
  const s = Math.floor(seconds);
  const parts = [[Math.floor(s / 86400), "d"], [Math.floor(s / 3600) % 24, "h"], [Math.floor(s / 60) % 60, "m"], [s % 60, "s"]];
  return parts.filter(([n], i) => n || i === 3).map(([n, u]) => `${n}${u}`).join(" ");
}

// -- sign in and out -------------------------------------------------------------------------------

onSubmit("#sign-in", async () => {
  token = $("#token").value.trim();
  try {
    await api("GET", "/admin/cluster/status");
  } catch (error) {
    token = "";
    $("#sign-in-error").textContent = error instanceof Refused ? "Refused: that is not this node's admin token." : String(error);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  start();
});

$("#sign-out").addEventListener("click", () => signOut(""));

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = "";
  clearInterval(timer);
  $("#console").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in-panel").hidden = false;
  $("#sign-in-error").textContent = why;
}

async function start() {
  $("#sign-in-panel").hidden = true;
  $("#console").hidden = false;
  $("#sign-out").hidden = false;
  $("#sign-in-error").textContent = "";
  makeChart();
  await Promise.all([cluster(), activities(), lives(), bannedWords(), reports()].map((p) => p.catch((e) => {
    if (e instanceof Refused) signOut(e.message); else toast(e.message, true);
  })));
  clearInterval(timer);
  timer = setInterval(() => { poll(); }, POLL_MS);
  poll();
}

// -- cluster and the connection chart --------------------------------------------------------------

async function cluster() {
  const c = await api("GET", "/admin/cluster/status");
  $("#who").textContent = `node ${c.node}`;
  $("#node-id").textContent = c.node;
  $("#uptime").textContent = duration(c.uptime_s);
  $("#redis").textContent = `${c.redis.reachable ? "reachable" : "NOT reachable"}, ${c.redis.where}`;
  $("#redis").className = c.redis.reachable ? "ok" : "bad";
  $("#nodes").textContent = c.nodes.join(", ");
}

/** `heihei_connections{realm="live"} 3` lines of the Prometheus text, by realm. */
function connectionsFrom(metrics) {
  const counts = {};
  for (const m of metrics.matchAll(/^heihei_connections\{realm="([^"]+)"\} ([0-9.e+]+)$/gm)) counts[m[1]] = Number(m[2]);
  return counts;
}

async function poll() {
  try {
    const counts = connectionsFrom(await api("GET", "/metrics"));
    series[0].push(Date.now() / 1000);
    REALMS.forEach((realm, i) => series[i + 1].push(counts[realm] ?? 0));
    if (series[0].length > CHART_POINTS) series.forEach((s) => s.shift());
    if (series[0].length > 1) chart.setData(series);  // one point has no time span to draw
    $("#connections tbody").replaceChildren(...REALMS.map((realm) => {
      const tr = row([realm, String(counts[realm] ?? 0)]);
      tr.lastChild.remove();  // no actions here
      tr.dataset.realm = realm;
      return tr;
    }));
    await cluster();
  } catch (error) {
    if (error instanceof Refused) signOut(error.message);
  }
}

function makeChart() {
  if (chart) return;
  const width = Math.max(320, $("#cluster").clientWidth - 40);
  chart = new uPlot({
    width, height: 220, title: "connections per realm (from /metrics)",
    scales: { y: { range: (u, min, max) => [0, Math.max(4, max + 1)] } },
    series: [{}, ...REALMS.map((realm, i) => ({ label: realm, stroke: COLORS[i], width: 2 }))],
    axes: [{}, { values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? t : "")) }],
  }, series, $("#chart"));
  window.heiheiChart = chart;  // for the browser tests
}

// -- live activities (seed 000) --------------------------------------------------------------------

async function activities() {
  const { activities: all } = await api("GET", "/admin/live/activities");
  const rows = [];
  for (const a of all) {
    const detail = await api("GET", `/admin/live/activities/${encodeURIComponent(a.activityId)}`);
    rows.push(row([a.activityId, a.title, a.state, String(detail.total ?? "")], [["Open", () => activity(a.activityId)]]));
  }
  $("#activity-rows").replaceChildren(...rows);
}

let currentActivity = null;

async function activity(id) {
  currentActivity = id;
  const path = `/admin/live/activities/${encodeURIComponent(id)}`;
  const [{ muted }, { messages }] = await Promise.all([api("GET", `${path}/mutes`), api("GET", `${path}/messages?count=30`)]);
  $("#activity").hidden = false;
  $("#activity-id").textContent = id;
  $("#activity-mutes").replaceChildren(...Object.entries(muted).map(([user, until]) => item(
    `${user} ${until ? "until " + when(until) : "until unmuted"}`,
    [["Unmute", () => act(`unmuted ${user}`, () => api("DELETE", `${path}/mutes/${encodeURIComponent(user)}`), () => activity(id))]])));
  $("#activity-messages").replaceChildren(...messages.reverse().map((m) => item(
    `${m.time} ${m.userName}: ${m.msg}`,
    [["Mute sender", () => act(`muted ${m.userName}`, () => api("PUT", `${path}/mutes/${encodeURIComponent(m.user)}`), () => activity(id))],
     ["Remove", () => act("message removed", () => api("DELETE", `${path}/messages/${encodeURIComponent(m.id)}`), () => activity(id)), "danger"]])));
}

onSubmit("#activity-mute", () => {
  const user = $("#activity-mute-user").value.trim();
  const minutes = Number($("#activity-mute-minutes").value);
  const body = minutes > 0 ? { duration_s: minutes * 60 } : undefined;
  act(`muted ${user}`, () => api("PUT", `/admin/live/activities/${encodeURIComponent(currentActivity)}/mutes/${encodeURIComponent(user)}`, body),
      () => activity(currentActivity));
});

// -- heihei live rooms -----------------------------------------------------------------------------

async function lives() {
  const { lives: all } = await api("GET", "/admin/heihei/lives");
  $("#live-rows").replaceChildren(...all.map((l) => row(
    [l.liveId, l.title, l.anchor, String(l.onlineUsers), l.muted.join(", ")], [["Open", () => live(l.liveId)]])));
}

let currentLive = null;

async function live(id) {
  currentLive = id;
  const room = await api("GET", `/admin/heihei/lives/${id}`);
  $("#live").hidden = false;
  $("#live-id").textContent = `${id}: ${room.title}`;
  const path = `/admin/heihei/lives/${id}`;
  const refresh = async () => { await live(id); await lives(); };
  $("#live-viewers").replaceChildren(...room.viewers.map((uid) => {
    const muted = room.muted.includes(uid);
    return item(`user ${uid}${muted ? " (muted)" : ""}`, [
      muted ? ["Unmute", () => act(`unmuted ${uid}`, () => api("DELETE", `${path}/mutes/${uid}`), refresh)]
            : ["Mute", () => act(`muted ${uid}`, () => api("PUT", `${path}/mutes/${uid}`), refresh)],
      ["Kick", () => act(`kicked ${uid}`, () => api("PUT", `${path}/kicks/${uid}`), refresh), "danger"],
      ["Ban", () => act(`banned ${uid}`, () => api("PUT", `/admin/heihei/bans/${uid}`, { reason: "from the console" }), refresh), "danger"],
    ]);
  }));
}

onSubmit("#live-notice", () => act("notice posted", () => api("POST", `/admin/heihei/lives/${currentLive}/notice`,
                                                              { text: $("#live-notice-text").value })));

// -- users -------------------------------------------------------------------------------------------

onSubmit("#user-lookup", () => act("user found", async () => {
  const user = await api("GET", `/admin/heihei/users/${$("#user-id").value.trim()}`);
  $("#user").hidden = false;
  $("#user-facts").textContent = JSON.stringify(user, null, 2);
}));

onSubmit("#user-ban", () => act("banned", () => api("PUT", `/admin/heihei/bans/${$("#user-id").value.trim()}`,
                                                    { reason: $("#ban-reason").value })));
$("#unban-button").addEventListener("click", () => act("ban lifted", () => api("DELETE", `/admin/heihei/bans/${$("#user-id").value.trim()}`)));

// -- banned words, reports, broadcast ----------------------------------------------------------------

async function bannedWords() {
  const { words } = await api("GET", "/admin/moderation/banned-words");
  $("#banned-count").textContent = `${words.length} words on this node.`;
  $("#banned-words").replaceChildren(...words.slice(0, 300).map((w) => { const li = document.createElement("li"); li.textContent = w; return li; }));
}

$("#reload-words").addEventListener("click", () => act("banned words reloaded", () => api("POST", "/admin/moderation/banned-words/reload"), bannedWords));

async function reports() {
  const { reports: open } = await api("GET", "/admin/heihei/reports?status=open");
  $("#report-rows").replaceChildren(...open.map((r) => row(
    [String(r.id), r.reporter, r.target, r.reportTypeText || String(r.reportType), when(r.created)],
    [["Dismiss", () => act(`report ${r.id} closed`, () => api("POST", `/admin/heihei/reports/${r.id}/resolve`, { resolution: "dismissed" }), reports)],
     ["Ban reported", () => act(`report ${r.id} closed, ${r.target} banned`, () => api("POST", `/admin/heihei/reports/${r.id}/resolve`, { resolution: "banned", ban: true }), reports), "danger"]])));
}

onSubmit("#notice-all", () => act("notice broadcast", async () => {
  const { sent } = await api("POST", "/admin/heihei/notice", { text: $("#notice-all-text").value });
  $("#notice-all-result").textContent = sent.length ? `sent to live rooms ${sent.join(", ")}` : "no room is live now";
}));

if (token) start();
