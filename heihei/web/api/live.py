"""`/api/live/...`: the heihei app's live rooms (seed 001; docs/heihei-live.md).

Every endpoint takes `token` and answers `{errorcode, errormsg, ...}`. A
live's id is also its roomId and its stream name. Domain work is in
heihei.heihei.liveservice (`social.lives`); this module declares parameters
and hands over.
"""

from __future__ import annotations

from heihei.web.api.base import HEIHEI, ApiModule
from heihei.web.kit.params import integer, long, string
from heihei.web.kit.routes import endpoint, new_app

LIVE_ERRORS = (731,)
ANCHOR_ERRORS = (731, 711)


def live_id(**kw):
    return long("liveId", minimum=1, **kw)


def user_id(**kw):
    return long("userId", minimum=1, **kw)


class LiveApi(ApiModule):
    app = new_app(HEIHEI)
    prefix = "/api/live"

    @property
    def lives(self):
        return self.social.lives

    # -- the anchor ----------------------------------------------------------------------

    @endpoint(app, "/create-live", "Create a live (status 0); the answer carries the anchor's pushAddr and qiniuObj",
              string("title", max_length=200), returns=("live", "share", "liveOptions"))
    async def create_live(self, call, a):
        return await self.lives.lives.create(call.user, a["title"])

    @endpoint(app, "/change-live", "Change a live's title (a live-change item to its room)",
              live_id(), string("title", max_length=200), errors=ANCHOR_ERRORS, returns=("live",))
    async def change_live(self, call, a):
        return await self.lives.lives.change(call.user, str(a["liveId"]), a["title"])

    @endpoint(app, "/start-live", "The anchor's stream is up: the live goes on (at once, or when the media "
              "server reports the stream)", live_id(), errors=ANCHOR_ERRORS)
    async def start_live(self, call, a):
        await self.lives.lives.start(call.user, str(a["liveId"]))

    @endpoint(app, "/stop-live", "End a live (status 2); it stays as a replay", live_id(), errors=ANCHOR_ERRORS,
              returns=("live", "share"))
    async def stop_live(self, call, a):
        return await self.lives.lives.stop(call.user, str(a["liveId"]))

    @endpoint(app, "/pause-live", "Pause a live (a pause-live item to its room)", live_id(),
              errors=(731, 711, 735))
    async def pause_live(self, call, a):
        await self.lives.lives.pause(call.user, str(a["liveId"]))

    @endpoint(app, "/continue-live", "Continue a paused live (a continue-live item to its room)", live_id(),
              errors=(731, 711, 735))
    async def continue_live(self, call, a):
        await self.lives.lives.resume(call.user, str(a["liveId"]))

    @endpoint(app, "/delete-live", "Delete a live (status 4; a playing live is stopped first)", live_id(),
              errors=ANCHOR_ERRORS, returns=("live",))
    async def delete_live(self, call, a):
        return await self.lives.lives.delete(call.user, str(a["liveId"]))

    @endpoint(app, "/set-live-visible", "Show or hide a live from others (lists, join-live)", live_id(),
              integer("visible", minimum=0, maximum=1), errors=ANCHOR_ERRORS, returns=("live",))
    async def set_live_visible(self, call, a):
        return await self.lives.lives.set_visible(call.user, str(a["liveId"]), a["visible"])

    @endpoint(app, "/unclosed-live", "The caller's live that is not closed (as create-live answers), if any",
              returns=("live", "share", "liveOptions"))
    async def unclosed_live(self, call, a):
        return await self.lives.lives.unclosed(call.user)

    # -- viewers -------------------------------------------------------------------------

    @endpoint(app, "/get-live", "A live with its status and anchor (any status; 506 for a playing live you "
              "are not in)", live_id(), errors=(731, 737, 506), returns=("live", "share", "userInfo"))
    async def get_live(self, call, a):
        return await self.lives.watching.get(call.user, str(a["liveId"]))

    @endpoint(app, "/join-live", "Enter a playing live's room (others: its status, not joined)", live_id(),
              string("liveKey", required=False, max_length=64, description="an invitation (live-invite)"),
              errors=(731, 737, 505), returns=("live", "share", "userInfo"))
    async def join_live(self, call, a):
        return await self.lives.watching.join(call.user, str(a["liveId"]), a["liveKey"])

    @endpoint(app, "/quit-live", "Leave a live's room", live_id(), errors=LIVE_ERRORS)
    async def quit_live(self, call, a):
        await self.lives.watching.quit(call.user, str(a["liveId"]))

    @endpoint(app, "/heart-beat", "I am still here (anchor: isCreator 1); nextTimeout says when to beat again",
              live_id(), integer("isCreator", minimum=0, maximum=1), errors=(731, 711, 725, 506),
              returns=("liveId", "nextTimeout"))
    async def heart_beat(self, call, a):
        return await self.lives.watching.heart_beat(call.user, str(a["liveId"]), a["isCreator"] == 1,
                                                    self.lives.lives)

    @endpoint(app, "/list-live-by-recommend", "Playing lives (lives) and replays (liveskback)",
              returns=("expireTime", "lives", "liveskback"))
    async def list_live_by_recommend(self, call, a):
        return await self.lives.watching.recommended(call.user)

    @endpoint(app, "/list-live-by-follow", "Lives (lives) and replays (lookbacks) of the users you follow",
              returns=("expireTime", "lives", "lookbacks"))
    async def list_live_by_follow(self, call, a):
        return await self.lives.watching.followed(call.user)

    @endpoint(app, "/list-live-by-user", "A user's lives, newest first (default: your own)",
              user_id(required=False), integer("offset", required=False, minimum=0, default=0),
              integer("limit", required=False, minimum=1, maximum=20, default=10), errors=(710,),
              returns=("expireTime", "totalCount", "lives", "isFollowed"))
    async def list_live_by_user(self, call, a):
        target = str(a["userId"]) if a["userId"] is not None else call.user
        return await self.lives.watching.by_user(call.user, target, a["offset"], a["limit"])

    @endpoint(app, "/list-live-users", "Who is in a live's room, newest first, 20 a page",
              live_id(), long("lastJoinTime", required=False, minimum=0, default=0),
              integer("direction", required=False, minimum=0, maximum=1, default=0,
                      description="0: joined after lastJoinTime, 1: before it"),
              errors=(731, 506), returns=("expireTime", "totalCount", "roomSeatCount", "roomLockedCount", "users"))
    async def list_live_users(self, call, a):
        return await self.lives.watching.users(call.user, str(a["liveId"]), a["lastJoinTime"], a["direction"])

    @endpoint(app, "/list-replay-users", "Who watched a live's replay, newest first", live_id(),
              errors=LIVE_ERRORS, returns=("users",))
    async def list_replay_users(self, call, a):
        return await self.lives.watching.replay_users(call.user, str(a["liveId"]))

    @endpoint(app, "/share-live", "The share texts of a live (weibo, wechat, friend)", live_id(),
              errors=LIVE_ERRORS, returns=("share",))
    async def share_live(self, call, a):
        live = await self.lives.core.require(str(a["liveId"]))
        return {"share": await self.lives.core.share(live)}

    @endpoint(app, "/live-like", "Light up a live (likes reach the room coalesced, with a count)", live_id(),
              integer("type", required=False, minimum=1, maximum=3, default=1), errors=(731, 506))
    async def live_like(self, call, a):
        await self.lives.moderation.like(call.user, str(a["liveId"]), a["type"])

    # -- paid items (issue 19; heihei.heihei.livegifts) ------------------------------------------

    @endpoint(app, "/gift-info", "The gifts on sale (price in diamonds)", returns=("expireTime", "gifts"))
    async def gift_info(self, call, a):
        return await self.social.money.catalog.gift_info()

    @endpoint(app, "/buy-gift", "Send a gift to a live's anchor (740: not enough diamonds); the same gift_uuid "
              "and amount again is a retry and charges nothing", long("giftId", minimum=1, maximum=2 ** 31 - 1),
              live_id(), integer("amount", required=False, default=1, minimum=1, maximum=100000,
                                 description="the combo count"),
              string("gift_uuid", required=False, max_length=64, description="the combo's id (the client's)"),
              errors=(730, 740, 731, 506, 710, 721), returns=("gold",))
    async def buy_gift(self, call, a):
        return await self.social.money.live_gifts.buy_gift(call.user, str(a["liveId"]), a["giftId"], a["amount"],
                                                           a["gift_uuid"])

    @endpoint(app, "/buy-bullet", "A paid barrage (小喇叭) to a live's room (740: not enough diamonds)", live_id(),
              string("message", max_length=200), errors=(740, 731, 506, 722, 721), returns=("gold",))
    async def buy_bullet(self, call, a):
        return await self.social.money.live_gifts.buy_bullet(call.user, str(a["liveId"]), a["message"])

    # -- moderation ------------------------------------------------------------------------

    @endpoint(app, "/kick-out-user", "Put a viewer out of the room for the rest of this live (anchor, managers)",
              live_id(), user_id(), errors=(731, 711, 710))
    async def kick_out_user(self, call, a):
        await self.lives.moderation.kick(call.user, str(a["liveId"]), str(a["userId"]))

    @endpoint(app, "/shutupuser", "Mute a user in a live's room (anchor, managers)", live_id(), user_id(),
              errors=(731, 711, 710))
    async def shutup_user(self, call, a):
        await self.lives.moderation.mute(call.user, str(a["liveId"]), str(a["userId"]), True)

    @endpoint(app, "/shutupopen", "Unmute a user in a live's room (anchor, managers)", live_id(), user_id(),
              errors=(731, 711, 710))
    async def shutup_open(self, call, a):
        await self.lives.moderation.mute(call.user, str(a["liveId"]), str(a["userId"]), False)

    @endpoint(app, "/isshutup", "Is a user muted in a live's room (1 yes, 2 no)", live_id(), user_id(),
              errors=LIVE_ERRORS, returns=("isshutup",))
    async def isshutup(self, call, a):
        muted = await self.lives.moderation.is_muted(str(a["liveId"]), str(a["userId"]))
        return {"isshutup": 1 if muted else 2}

    @endpoint(app, "/livemgr", "Make a user one of your room managers (type 1) or not (type 0)",
              user_id(), integer("type", required=False, minimum=0, maximum=1, default=1),
              live_id(required=False, description="accepted, not needed: managers are the anchor's"),
              errors=(710, 400))
    async def livemgr(self, call, a):
        await self.lives.moderation.set_manager(call.user, str(a["userId"]), a["type"] == 1)

    @endpoint(app, "/getmgruser", "An anchor's room managers (default: yours)", user_id(required=False),
              live_id(required=False, description="or the anchor of this live"), errors=(710, 731),
              returns=("users",))
    async def getmgruser(self, call, a):
        anchor = call.user
        if a["userId"] is not None:
            anchor = str(a["userId"])
        elif a["liveId"] is not None:
            anchor = (await self.lives.core.require(str(a["liveId"])))["userId"]
        return await self.lives.moderation.managers(call.user, anchor)

    @endpoint(app, "/getuser", "A user as seen in a live's room: profile, manager, muted, creator",
              live_id(), user_id(), errors=(731, 710), returns=("user", "isCreator", "isMgr", "isshutup", "inRoom",
                                                                  "canManage"))
    async def getuser(self, call, a):
        return await self.lives.moderation.user_card(call.user, str(a["liveId"]), str(a["userId"]))

    @endpoint(app, "/systemnotify", "A system notice to a live's room (anchor, managers)", live_id(),
              string("text", max_length=200), errors=(731, 711))
    async def systemnotify(self, call, a):
        await self.lives.moderation.system_notice(call.user, str(a["liveId"]), a["text"])

    # -- seats, knocks and invitations -----------------------------------------------------

    @endpoint(app, "/lock-live-seat", "Lock one seat (unlock 0) or unlock one (unlock 1)", live_id(),
              string("unlock", enum=("0", "1", "true", "false")), errors=(731, 711, 502))
    async def lock_live_seat(self, call, a):
        await self.lives.moderation.lock_seat(call.user, str(a["liveId"]), a["unlock"] in ("1", "true"))

    @endpoint(app, "/knock-status", "Whether the room is full (needKnock) and how many are in it", live_id(),
              errors=LIVE_ERRORS, returns=("needKnock", "roomUserCount", "roomNowUserCount", "liveStatus"))
    async def knock_status(self, call, a):
        return await self.lives.watching.knock_status(str(a["liveId"]))

    @endpoint(app, "/knock-live-room", "Knock on a full room: the anchor and managers hear of it", live_id(),
              errors=(731, 711, 504))
    async def knock_live_room(self, call, a):
        await self.lives.moderation.knock(call.user, str(a["liveId"]))

    @endpoint(app, "/invite-user-list", "Whom the anchor may invite: who knocked, then who they follow",
              live_id(), errors=ANCHOR_ERRORS, returns=("users",))
    async def invite_user_list(self, call, a):
        return await self.lives.moderation.invite_list(call.user, str(a["liveId"]))

    @endpoint(app, "/invite-user", "Invite a user (a live-invite item with their liveKey, or a push)", live_id(),
              user_id(), errors=(731, 711, 710))
    async def invite_user(self, call, a):
        await self.lives.moderation.invite(call.user, str(a["liveId"]), str(a["userId"]))

    # -- co-hosting (连麦; heihei.heihei.conference) -------------------------------------------

    @property
    def conferences(self):
        return self.social.chats.conferences

    @endpoint(app, "/call-request", "Co-hosting: a viewer asks the anchor (queued 30 s); the anchor (userId) takes "
              "a viewer's request (join-conference to both) or invites a viewer (conference-notify)", live_id(),
              user_id(required=False), errors=(722, 731, 739, 742), returns=("expireTime",))
    async def call_request(self, call, a):
        target = str(a["userId"]) if a["userId"] is not None else None
        return await self.conferences.call_request(call.user, str(a["liveId"]), target)

    @endpoint(app, "/accept-conference", "Co-hosting: take the anchor's invitation (the anchor: a viewer's request, "
              "userId); both get join-conference", live_id(), user_id(required=False),
              errors=(409, 731, 739, 742), returns=("expireTime",))
    async def accept_conference(self, call, a):
        target = str(a["userId"]) if a["userId"] is not None else None
        return await self.conferences.accept(call.user, str(a["liveId"]), target)

    @endpoint(app, "/refuse-conference", "Co-hosting: turn down a request (anchor) or an invitation (viewer; userId "
              "is the anchor)", live_id(), user_id(), errors=(731, 742))
    async def refuse_conference(self, call, a):
        await self.conferences.refuse(call.user, str(a["liveId"]), str(a["userId"]))

    @endpoint(app, "/join-conference", "Co-hosting: the RTC room token (again after a failed link); the room gets "
              "conference-status", live_id(), errors=(731, 750), returns=("token", "confStatus"))
    async def join_conference(self, call, a):
        return await self.conferences.join(call.user, str(a["liveId"]))

    @endpoint(app, "/conference-success", "Co-hosting: my stream is up; when both are, the room gets "
              "conference-status 1", live_id(), errors=(731, 750), returns=("confStatus",))
    async def conference_success(self, call, a):
        return await self.conferences.success(call.user, str(a["liveId"]))

    @endpoint(app, "/quit-conference", "Co-hosting: end it (stop-conference to the other, conference-status 2 to "
              "the room)", live_id(), errors=(731, 742))
    async def quit_conference(self, call, a):
        await self.conferences.quit(call.user, str(a["liveId"]))

    # -- a replay's chat -------------------------------------------------------------------

    @app.route("/replay-messages/<string:name>", methods=["GET"])
    async def replay_messages(self, request, name):
        """messageAddr: the replay's chat as a zip (signed address; 404 otherwise)."""
        sign = (request.args.get(b"sign") or [b""])[0].decode("ascii", "replace")
        stem = name.removeprefix("message_").removesuffix(".txt.zip")
        data = None
        if stem.isdigit() and name == f"message_{stem}.txt.zip":
            data = await self.lives.replays.zip_of(stem, sign)
        if data is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"application/json; charset=utf-8")
            return b'{"errorcode":404,"errormsg":"not found"}'
        request.setHeader(b"content-type", b"application/zip")
        request.setHeader(b"cache-control", b"public, max-age=86400")
        return data
