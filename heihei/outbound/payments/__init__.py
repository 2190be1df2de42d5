"""
Clients for the payment providers heihei's apps pay through: WeChat Pay (API
v3), Alipay (open API, RSA2) and Apple in-app purchase receipts.

Each provider is a class taking its configuration (a frozen dataclass: ids,
keys as PEM text / base64 / file paths, a base URL so tests run fakes on
loopback), a treq `HTTPClient` and a clock; network operations are coroutines.
They sign what they send, verify what they receive, and report by raising the
errors of `errors.py`, grouped by what the caller must do next. They keep no
state between calls: crediting a payment once, however many notifications and
queries report it, is the ledger's job.

    wechatpay.WeChatPay   create_app_order, app_pay_params, query_order, verify_notification
    alipay.Alipay         app_order_string, verify_notification, query_trade, transfer, query_transfer
    iap.AppleIAP          verify_receipt

docs/providers-payments.md lists their settings and what each check defends against.
"""
