import { $, endpoints } from "./wire.js";

// the boss page is served by the boss site, so it calls the group API on its own origin
const where = await endpoints();
$("#to-boss").href = `${where.bossHttp}/demo/boss.html`;
