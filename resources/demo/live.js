// The live activity room (docs/live.md): {"cmd", "data"} frames; answers carry code, msg, cmd, data.
import { $, endpoints, onSubmit, say, socket, status } from "./wire.js";

const where = await endpoints();
const activityId = where.activityId;
let token = "";
$("#activity").textContent = activityId;

const frame = (cmd, data) => JSON.stringify({ cmd, data: { activityId, ...data } });

const ws = socket(where.live, {
  onOpen: () => {
    ws.send(frame("Open", {}));
    ws.send(frame("History", { count: 20 }));
  },
  onText: (text) => {
    const answer = JSON.parse(text);
    const data = answer.data || {};
    if (answer.code !== 1) {
      status(`${answer.cmd}: ${answer.msg} (${answer.code})`, "bad");
      return;
    }
    if (answer.cmd === "Open") {
      status(`${data.title}: ${data.total} online; sign in to talk`, "ok");
      $("#login-button").disabled = false;
    } else if (answer.cmd === "Total") {
      if (!token) status(`${data.total} online; sign in to talk`, "ok");
    } else if (answer.cmd === "History") {
      for (const m of data.messages || []) say(m.my === "1" ? "mine" : "theirs", m.userName, m.msg);
    } else if (answer.cmd === "Login") {
      token = data.token;
      status(`signed in as ${data.nickname}`, "ok");
      $("#send").disabled = false;
    } else if (answer.cmd === "Message" && data.msg !== undefined) {
      say(data.my === "1" ? "mine" : "theirs", data.userName, data.msg);
    }
  },
  onClose: () => status("disconnected", "bad"),
});

// WeChat's OAuth would redirect back with ?code=...; the demo's WeChat takes the name as the code
onSubmit("#login", async () => {
  ws.send(frame("Login", { code: $("#name").value.trim(), type: "wechat" }));
});

onSubmit("#compose", async () => {
  ws.send(frame("Message", { msg: $("#text").value, token }));
  $("#text").value = "";
});
