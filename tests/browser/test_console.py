"""The operators' console in a real browser: the refusal without the token, signing in, a
connection appearing on the chart, muting a user of the live room."""

import json
import urllib.parse
import urllib.request

from playwright.sync_api import expect

from tests.browser.conftest import screenshot


def post(demo, path: str, **form) -> dict:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(demo.url(path), data=data, timeout=10) as r:
        answer = json.loads(r.read())
    assert answer.get("errorcode", 0) == 0, (path, answer)
    return answer


def heihei_user(demo, phone: str) -> tuple[str, str]:
    """(token, user id) of a phone signed in with the demo's SMS code."""
    post(demo, "/api/user/get-sms-verification-code", phoneNo=phone)
    with urllib.request.urlopen(demo.url(f"/demo/sms-code?phoneNo={phone}"), timeout=10) as r:
        code = json.loads(r.read())["code"]
    answer = post(demo, "/api/user/sign-in-cl-by-phone", phoneNo=phone, verifyCode=code)
    return answer["token"], str(answer["userInfo"]["id"])


def live_connections(page) -> int:
    return page.evaluate("() => { const d = window.heiheiChart.data; return d[1].length ? d[1][d[1].length - 1] : -1; }")


def test_the_console_refuses_a_wrong_token(demo, two):
    page, _ = two
    page.goto(demo.url("/console/"))
    page.fill("#token", "not-the-token")
    page.click("#sign-in button")
    expect(page.locator("#sign-in-error")).to_have_text("Refused: that is not this node's admin token.")
    expect(page.locator("#console")).to_be_hidden()
    # and the API itself answers 401 without it
    try:
        urllib.request.urlopen(demo.url("/admin/cluster/status"), timeout=5)
        raise AssertionError("the admin API answered without the token")
    except urllib.error.HTTPError as e:
        assert e.code == 401 and json.loads(e.read())["error"].startswith("unauthorized")
    screenshot(page, "console-refused")


def test_the_console_shows_a_connection_and_mutes_a_user(demo, two):
    console, viewer = two
    console.goto(demo.url("/console/"))
    console.fill("#token", demo.admin_token)
    console.click("#sign-in button")
    expect(console.locator("#node-id")).not_to_be_empty()
    expect(console.locator("#redis")).to_contain_text("reachable")
    console.wait_for_function("() => window.heiheiChart && window.heiheiChart.data[0].length > 1")
    before = live_connections(console)

    # someone joins the live room: the chart (polling /metrics) shows one more live connection
    viewer.goto(demo.url("/demo/live.html"))
    viewer.fill("#name", "carol")
    expect(viewer.locator("#login-button")).to_be_enabled()
    viewer.click("#login-button")
    expect(viewer.locator("#status")).to_have_text("signed in as carol")
    console.wait_for_function(f"() => {{ const d = window.heiheiChart.data[1]; return d[d.length - 1] >= {before + 1}; }}")
    expect(console.locator('#connections tr[data-realm="live"] td').nth(1)).to_have_text(str(before + 1))

    viewer.fill("#text", "spam spam spam")
    viewer.click("#send")
    expect(viewer.locator("#messages li").filter(has_text="spam spam spam")).to_have_count(1)

    # the operator opens activity 1001 and mutes the sender of that message
    console.locator("#activity-rows tr", has_text="1001").get_by_role("button", name="Open").click()
    message = console.locator("#activity-messages li", has_text="carol: spam spam spam")
    expect(message).to_have_count(1)
    message.get_by_role("button", name="Mute sender").click()
    expect(console.locator("#activity-mutes li")).to_contain_text("until unmuted")
    screenshot(console, "console", full_page=True)

    # the muted viewer's next message is refused in the page
    viewer.fill("#text", "am I muted?")
    viewer.click("#send")
    expect(viewer.locator("#status")).to_contain_text("-1002")
    expect(viewer.locator("#messages li").filter(has_text="am I muted?")).to_have_count(0)


def test_the_console_mutes_and_kicks_in_a_heihei_live_room(demo, two):
    anchor_token, _ = heihei_user(demo, "13900000001")
    viewer_token, viewer = heihei_user(demo, "13900000002")
    live = post(demo, "/api/live/create-live", token=anchor_token, title="console test")["live"]
    live_id = str(live["liveId"])
    post(demo, "/api/live/start-live", token=anchor_token, liveId=live_id)
    post(demo, "/api/live/join-live", token=viewer_token, liveId=live_id)

    console, _ = two
    console.goto(demo.url("/console/"))
    console.fill("#token", demo.admin_token)
    console.click("#sign-in button")
    room = console.locator("#live-rows tr", has_text=live_id)
    expect(room).to_contain_text("console test")
    room.get_by_role("button", name="Open").click()
    viewer_row = console.locator("#live-viewers li", has_text=f"user {viewer}")
    viewer_row.get_by_role("button", name="Mute").click()
    expect(viewer_row).to_contain_text("(muted)")
    expect(room.locator("td").nth(4)).to_have_text(viewer)
    # the muted viewer's room text is refused by the node (722)
    data = urllib.parse.urlencode({"token": viewer_token, "text": "hi", "roomId": live_id}).encode()
    with urllib.request.urlopen(demo.url("/api/msg/send-msg"), data=data, timeout=10) as r:
        assert json.loads(r.read())["errorcode"] == 722
    viewer_row.get_by_role("button", name="Kick").click()
    expect(console.locator("#live-viewers li", has_text=f"user {viewer}")).to_have_count(0)
    console.wait_for_function("() => window.heiheiChart.data[0].length > 2")
    screenshot(console, "console-live-room", full_page=True)
