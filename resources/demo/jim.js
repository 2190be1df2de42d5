// J-IM (docs/jim.md): JSON frames with "cmd"; the server pushes cmd 6 after the handshake, answers
// a chat (cmd 11) with command 12 and delivers command 11 to the receiver.
import { $, endpoints, onSubmit, say, socket, status } from "./wire.js";

const where = await endpoints();
let ws = null;
let me = "";

onSubmit("#login", async () => {
  me = $("#user").value.trim();
  if (ws) ws.close();
  // the demo node accepts any password ([jim] insecure_login); a real one asks [jim] auth_url
  const query = new URLSearchParams({ username: me, password: "demo" });
  ws = socket(`${where.jim}?${query}`, {
    onOpen: () => status("handshake done, waiting for cmd 6"),
    onText: (text) => {
      const frame = JSON.parse(text);
      if (frame.command === 6) {
        status(`signed in as ${frame.data.user.nick}`, "ok");
        $("#send").disabled = false;
        // what waited while we were away (J-IM's page asks the same at login)
        ws.send(JSON.stringify({ cmd: 19, type: 0, userId: me }));
      } else if (frame.command === 11) {
        say(frame.data.from === me ? "mine" : "theirs", `${frame.data.from}:`, frame.data.content);
      } else if (frame.command === 20) {
        for (const [partner, chats] of Object.entries((frame.data && frame.data.friends) || {})) {
          for (const chat of chats) say("theirs", `${chat.from} (while you were away):`, chat.content);
        }
      } else if (frame.command === 12 && frame.code === 10001) {
        say("notice", "", `${$("#peer").value} is offline: the message waits for them`);
      } else if (frame.code && frame.code >= 10002 && frame.command !== 20) {
        status(`${frame.msg}${frame.data && frame.data.reason ? ": " + frame.data.reason : ""}`, "bad");
      }
    },
    onClose: () => { status("disconnected", "bad"); $("#send").disabled = true; },
  });
});

onSubmit("#compose", async () => {
  const to = $("#peer").value.trim();
  const content = $("#text").value;
  ws.send(JSON.stringify({ cmd: 11, from: me, to, chatType: 2, msgType: 0, createTime: Date.now(), content }));
  say("mine", `${me} → ${to}:`, content);
  $("#text").value = "";
});
