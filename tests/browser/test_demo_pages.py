"""The demo pages: two browser contexts exchange messages on every protocol."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import screenshot


def messages(page):
    return page.locator("#messages li")


def test_index_links_every_protocol(demo, two):
    page, _ = two
    page.goto(demo.url("/demo/"))
    expect(page.locator(".card")).to_have_count(4)
    expect(page.locator("#to-boss")).to_have_attribute("href", demo.url("/demo/boss.html", "boss"))
    screenshot(page, "demo-index")


def test_live_room(demo, two):
    alice, bob = two
    for page, name in ((alice, "alice"), (bob, "bob")):
        page.goto(demo.url("/demo/live.html"))
        expect(page.locator("#login-button")).to_be_enabled()
        page.fill("#name", name)
        page.click("#login-button")
        expect(page.locator("#status")).to_have_text(f"signed in as {name}")
    alice.fill("#text", "大家好, from alice")
    alice.click("#send")
    expect(messages(bob).filter(has_text="大家好, from alice")).to_have_count(1)
    expect(messages(bob).last).to_contain_text("alice")
    bob.fill("#text", "hi alice")
    bob.click("#send")
    expect(messages(alice).filter(has_text="hi alice")).to_have_count(1)
    expect(alice.locator("#wire li.out").filter(has_text='"cmd":"Message"')).to_have_count(1)
    expect(alice.locator("#wire li.in").filter(has_text='"cmd":"Message"')).to_have_count(2)
    screenshot(alice, "demo-live")


def test_boss_chat_with_a_group(demo, two):
    one, two_ = two
    for page, user in ((one, "101"), (two_, "102")):
        page.goto(demo.url("/demo/boss.html", "boss"))
        page.fill("#user", user)
        page.click("#login-button")
        expect(page.locator("#status")).to_have_text(f"logged in as {user}")
    one.fill("#to", "102")
    one.fill("#text", "hello 102")
    one.click("#send")
    expect(messages(two_).filter(has_text="hello 102")).to_have_count(1)
    one.fill("#members", "102")
    one.fill("#group-name", "friends")
    one.click("#create")
    expect(messages(one).filter(has_text="created: 101, 102")).to_have_count(1)
    one.fill("#text", "hello group")
    one.click("#send")
    expect(messages(two_).filter(has_text="hello group")).to_contain_text("in group")
    expect(one.locator("#wire li.http").filter(has_text="/creategrp")).to_have_count(1)
    expect(one.locator("#wire li.out").filter(has_text="_hello group_group_demo")).to_have_count(1)
    screenshot(one, "demo-boss")


def test_jim_customer_service(demo, two):
    customer, agent = two
    agent.goto(demo.url("/demo/jim.html"))
    agent.fill("#user", "agent")
    agent.fill("#peer", "customer1")
    agent.click("#login-button")
    expect(agent.locator("#status")).to_have_text("signed in as agent")
    customer.goto(demo.url("/demo/jim.html"))
    customer.fill("#user", "customer1")
    customer.click("#login-button")
    expect(customer.locator("#status")).to_have_text("signed in as customer1")
    customer.fill("#text", "我的订单到哪了?")
    customer.click("#send")
    expect(messages(agent).filter(has_text="我的订单到哪了?")).to_have_count(1)
    agent.fill("#text", "已发货")
    agent.click("#send")
    expect(messages(customer).filter(has_text="已发货")).to_have_count(1)
    expect(customer.locator("#wire li.in").filter(has_text='"command":12')).to_have_count(1)
    screenshot(customer, "demo-jim")


def test_heihei_push_channel_with_sms_sign_in(demo, two):
    users = []
    for page, phone in zip(two, ("13800000001", "13800000002")):
        page.goto(demo.url("/demo/heihei.html"))
        page.fill("#phone", phone)
        page.click("#ask-button")
        expect(page.locator("#code")).to_have_value(re.compile(r"^[0-9]{6}$"))
        page.click("#sign-in-button")
        expect(page.locator("#status")).to_contain_text("the channel is open")
        users.append(page.locator("#me").inner_text().split()[-1])
    first, second = two
    first.fill("#to", users[1])
    first.fill("#text", "hi from the first phone")
    first.click("#send")
    expect(messages(second).filter(has_text="hi from the first phone")).to_have_count(1)
    expect(messages(first).filter(has_text="hi from the first phone")).to_have_count(1)  # the sender's copy
    second.fill("#to", users[0])
    second.fill("#text", "and back")
    second.click("#send")
    expect(messages(first).filter(has_text="and back")).to_have_count(1)
    expect(first.locator("#wire li.http").filter(has_text="GET sms-code?phoneNo=13800000001")).to_have_count(1)
    screenshot(first, "demo-heihei")
