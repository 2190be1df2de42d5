// The heihei app (docs/heihei.md): sign in by SMS code over the REST API, then the push channel
// /ws/channel?token=: every server frame is a JSON array of items; the page sends v2 IM objects.
import { $, call, endpoints, onSubmit, say, socket, status } from "./wire.js";

const where = await endpoints();
let ws = null;
let me = "";

onSubmit("#ask", async () => {
  const phoneNo = $("#phone").value.trim();
  const answer = await call("POST", "/api/user/get-sms-verification-code", { phoneNo });
  if (answer.errorcode !== 0) throw new Error(answer.errormsg);
  // a real node texts the code; the demo node keeps it for this page (GET /demo/sms-code)
  const sent = await call("GET", "sms-code", { phoneNo });
  $("#code").value = sent.code;
  $("#sign-in-button").disabled = false;
  status(`code sent to ${phoneNo} (the demo shows it above instead of texting it)`, "ok");
});

onSubmit("#sign-in", async () => {
  const answer = await call("POST", "/api/user/sign-in-cl-by-phone",
                            { phoneNo: $("#phone").value.trim(), verifyCode: $("#code").value.trim() });
  if (answer.errorcode !== 0) throw new Error(answer.errormsg);
  me = String(answer.userInfo.id);
  $("#me").textContent = `you are user ${me}`;
  open(answer.token);
});

function open(token) {
  if (ws) ws.close();
  const query = new URLSearchParams({ token, apiVersion: "2" });
  ws = socket(`${where.channel}?${query}`, {
    onOpen: () => { status(`signed in as user ${me}; the channel is open`, "ok"); $("#send").disabled = false; },
    onText: (text) => { for (const item of JSON.parse(text)) show(item); },
    onClose: () => { status("channel closed", "bad"); $("#send").disabled = true; },
  });
}

function show(item) {
  const msg = item.msg || {};
  if (item.msgType === "IM") {
    const from = String(msg.fromUserId);
    const user = (item.users || {})[from] || {};
    const text = msg.content && msg.content.text !== undefined ? msg.content.text : JSON.stringify(msg.content);
    const name = from === me ? `${me} → ${msg.toUserId}:` : `${user.displayName || from}:`;
    say(from === me ? "mine" : "theirs", name, text);
  } else if (msg.action === "message-unread-count") {
    $("#status").dataset.unread = msg.count;
  } else if (msg.action === "im-error") {
    status(`not sent: ${msg.errormsg} (${msg.errorcode})`, "bad");
  } else {
    say("notice", "", `${msg.msgType}${msg.action ? "/" + msg.action : ""}: ${msg.text || msg.comment || ""}`);
  }
}

onSubmit("#compose", async () => {
  ws.send(JSON.stringify({ msgType: "IM", msg: { toUserId: Number($("#to").value), msgType: "text",
                                                  content: { text: $("#text").value } } }));
  $("#text").value = "";
});
