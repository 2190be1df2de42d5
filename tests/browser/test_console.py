"""The operators' console in a real browser: the refusal without the token, signing in, a
connection appearing on the chart, muting a user of the live room."""

import json
import urllib.request

from playwright.sync_api import expect

from tests.browser.conftest import screenshot


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
    console.wait_for_function("() => window.heiheiChart && window.heiheiChart.data[0].length > 0")
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
