"""`/api/topic/...`: topics (黑聊) and their voice subjects (seed 001 v2.0.0)."""

from __future__ import annotations

from heihei.web.api.base import HEIHEI, ApiModule
from heihei.web.kit.params import integer, long, string
from heihei.web.kit.routes import endpoint, new_app

SUBJECT = long("subjectId", minimum=0, aliases=("id",))
OFFSET = integer("offset", required=False, default=0, minimum=0, maximum=100000,
                 description="where the page starts (the previous answer's offset)")
SIGN = string("sign", pattern=r"[0-9A-Fa-f]{32}", max_length=32,
              description="FileInfo.sign from /api/sys/oss-token (module record, format mp3)")
SAMPLES = string("samples", max_length=4000, description="the waveform: numbers separated by commas")
ORDER = {"0": "hot", "1": "new", "hot": "hot", "new": "new"}


class TopicApi(ApiModule):
    app = new_app(HEIHEI)
    prefix = "/api/topic"

    @endpoint(app, "/topic-list", "The topics, pinned first, and the 约聊 topic with its latest posters", OFFSET,
              returns=("topics", "dueChat", "offset"))
    async def topic_list(self, call, a):
        return await self.social.topics.topic_list(call.user, a["offset"])

    @endpoint(app, "/topic-detail", "A topic and a page of its subjects, hot or new, each with its newest replies",
              long("topicId", minimum=0, aliases=("id",), description="the topic (the seed's table omits it)"),
              string("type", required=False, default="0", enum=tuple(ORDER), description="0 hot, 1 new"), OFFSET,
              errors=(100,), returns=("topic", "users", "pageSize", "subjects", "offset"))
    async def topic_detail(self, call, a):
        return await self.social.topics.topic_detail(call.user, a["topicId"], ORDER[a["type"]], a["offset"])

    @endpoint(app, "/create-subject", "Post a voice subject in a topic (the file uploaded with oss-token)",
              long("topicId", minimum=0), SIGN, SAMPLES, string("title", max_length=200),
              integer("length", required=False, minimum=1, maximum=3600,
                      description="seconds; measured from the file when the node stores it"),
              errors=(100, 102, 400), returns=("subject", "users"))
    async def create_subject(self, call, a):
        return await self.social.topics.create_subject(call.user, a["topicId"], a["sign"], a["samples"], a["title"],
                                                       a["length"])

    @endpoint(app, "/get-subject", "One subject", SUBJECT, errors=(100,), returns=("subject", "users"))
    async def get_subject(self, call, a):
        return await self.social.topics.get_subject(call.user, a["subjectId"])

    @endpoint(app, "/update-subject", "Change a subject's title (its creator only)", SUBJECT,
              string("title", max_length=200), errors=(100, 400), returns=("subject", "users"))
    async def update_subject(self, call, a):
        return await self.social.topics.update_subject(call.user, a["subjectId"], a["title"])

    @endpoint(app, "/subject-detail", "A subject, its topic and a page of its thread's replies (oldest first)",
              SUBJECT, OFFSET, errors=(100,), returns=("topic", "subject", "pageSize", "replys", "users", "offset"))
    async def subject_detail(self, call, a):
        return await self.social.topics.subject_detail(call.user, a["subjectId"], a["offset"])

    @endpoint(app, "/listen-subject", "Count a listen", SUBJECT, errors=(100,),
              returns=("subjectCountings", "topicCountings"))
    async def listen_subject(self, call, a):
        return await self.social.topics.listen(call.user, a["subjectId"])

    @endpoint(app, "/like-subject", "Like a subject (once per user)", SUBJECT, errors=(100,),
              returns=("subjectCountings", "topicCountings"))
    async def like_subject(self, call, a):
        return await self.social.topics.like(call.user, a["subjectId"])

    @endpoint(app, "/reply-subject", "Reply to a subject with a voice post", SUBJECT, SIGN, SAMPLES,
              integer("length", required=False, minimum=1, maximum=3600,
                      description="seconds; measured from the file when the node stores it"),
              errors=(100, 102, 400), returns=("subject", "users"))
    async def reply_subject(self, call, a):
        return await self.social.topics.reply_subject(call.user, a["subjectId"], a["sign"], a["samples"],
                                                      a["length"])
