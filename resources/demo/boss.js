// The boss underscore protocol (docs/boss.md): text frames kind_target_content_type_extension;
// deliveries kind_from_content_type_group_timet_extension. This page is served by the boss site,
// so the group API (/creategrp, /querymygrps) is on its own origin.
import { $, call, endpoints, onSubmit, say, socket, status } from "./wire.js";

const where = await endpoints();
$("#home").href = `${where.http}/demo/`;
let ws = null;
let me = "";
// the original clients sent base64 JSON here; anything without "_" will do
const EXTENSION = "demo";
const DELIVERY = /^(text|emotion|picture|audio|video)_([^_]+)_(.*)_(unicast|group)_([^_]*)_([0-9]+)_([^_]*)$/s;

onSubmit("#login", async () => {
  me = $("#user").value.trim();
  if (ws) ws.close();
  ws = socket(where.boss, {
    onOpen: () => ws.send(`login_${me}`),
    onText: (text) => {
      if (text === "ok") {
        status(`logged in as ${me}`, "ok");
        $("#send").disabled = false;
        $("#create").disabled = false;
        refreshGroups();
        return;
      }
      const m = DELIVERY.exec(text);
      if (m) {
        const [, kind, from, content, type, group] = m;
        const where = type === "group" ? ` in group ${group}` : "";
        say(from === me ? "mine" : "theirs", `${from}${where}:`, kind === "text" ? content : `[${kind}] ${content}`);
      } else if (text.startsWith("error_")) {
        status(text, "bad");
      }
    },
    onClose: () => { status("disconnected", "bad"); $("#send").disabled = true; },
  });
});

onSubmit("#compose", async () => {
  const to = $("#to").value.trim();
  const text = $("#text").value;
  ws.send(`text_${to}_${text}_${$("#kind").value}_${EXTENSION}`);
  // the server echoes nothing back to the sender (as the original): show our own line here
  say("mine", `${me} → ${$("#kind").value === "group" ? "group " : ""}${to}:`, text);
  $("#text").value = "";
});

onSubmit("#group", async () => {
  const answer = await call("GET", "/creategrp", { creator: me, members: $("#members").value, name: $("#group-name").value });
  if (answer.code !== 1 && answer.code !== 0) throw new Error(answer.message);
  say("notice", "", `group ${answer.data.groupid} created: ${answer.data.members.join(", ")}`);
  $("#kind").value = "group";
  $("#to").value = answer.data.groupid;
});

async function refreshGroups() {
  const answer = await call("GET", "/querymygrps", { userid: me });
  for (const group of answer.data || []) {
    say("notice", "", `you are in group ${group.groupid} (${group.name}): ${group.members.map((m) => m.userid).join(", ")}`);
  }
}
