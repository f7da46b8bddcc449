#!/usr/bin/env python3
"""Writes runtime/privacy/tests/fixtures/pii_corpus.txt: Chinese and English sentences with
personal data marked inline as [[category:text]] (positives) and sentences full of look-alikes
that are not personal data (negatives: wrong check digits, dates, versions, order numbers,
MAC addresses, prices). All values are synthetic: resident IDs get a valid GB 11643 check
character and card numbers a valid Luhn digit from this script, with a fixed seed, so the file
is reproducible. Run once; the output is committed."""

import random
from pathlib import Path

rng = random.Random(20261208)
OUT = Path(__file__).resolve().parent.parent / "runtime/privacy/tests/fixtures/pii_corpus.txt"


def cn_id(valid=True):
    region = rng.choice(["110105", "310101", "440305", "320102", "510104", "330106", "420111", "610113"])
    y, m = rng.randint(1950, 2005), rng.randint(1, 12)
    d = rng.randint(1, 28)
    body = f"{region}{y:04d}{m:02d}{d:02d}{rng.randint(0, 999):03d}"
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(c) * k for c, k in zip(body, w)) % 11]
    if not valid:
        check = rng.choice([c for c in "0123456789X" if c != check])
    return body + check


def luhn_digit(partial):
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(num):
    return luhn_digit(num[:-1]) == num[-1]


def card(grouped=None):
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("62", 16), ("62", 19), ("37", 15), ("34", 15)])
    partial = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    num = partial + luhn_digit(partial)
    if grouped is None:
        grouped = rng.random() < 0.5
    if grouped and length in (16, 19):
        sep = rng.choice([" ", "-"])
        return sep.join(num[i:i + 4] for i in range(0, len(num), 4))
    return num


def not_luhn_digits(n):
    while True:
        s = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))
        if not luhn_ok(s):
            return s


def cn_mobile():
    n = rng.choice("3456789") + "".join(str(rng.randint(0, 9)) for _ in range(9))
    n = "1" + n
    style = rng.randint(0, 5)
    return [n, f"{n[:3]} {n[3:7]} {n[7:]}", f"{n[:3]}-{n[3:7]}-{n[7:]}", f"+86 {n}", f"+86-{n[:3]}-{n[3:7]}-{n[7:]}", f"0086{n}"][style]


def intl_phone():
    return rng.choice([
        f"+1 415 555 {rng.randint(1000, 9999)}", f"+1 (212) 555-{rng.randint(1000, 9999)}",
        f"+44 20 7946 {rng.randint(1000, 9999)}", f"+49 30 {rng.randint(100000, 999999)}",
        f"+81 3-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}", f"+33 1 23 45 {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"+65 6{rng.randint(100, 999)} {rng.randint(1000, 9999)}", f"+852 {rng.randint(5000, 9999)} {rng.randint(1000, 9999)}",
        f"({rng.randint(201, 989)}) 555-{rng.randint(1000, 9999)}", f"{rng.randint(201, 989)}-555-{rng.randint(1000, 9999)}",
        f"+61 2 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}", f"+886 2 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
    ])


def email():
    user = rng.choice(["zhang.san", "li_si2020", "wang.wu+news", "j.doe", "support", "chen-jie", "alice", "bob.smith", "liu88", "hr.team"])
    dom = rng.choice(["example.com", "163.com", "qq.com", "mail.example.co.uk", "company.cn", "gmail.com", "outlook.com", "corp.example.org", "sina.com.cn"])
    return f"{user}@{dom}"


def ipv4():
    return rng.choice([
        f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}", f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        f"172.16.{rng.randint(0, 255)}.{rng.randint(1, 254)}", f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
    ])


def ipv6():
    h = lambda: f"{rng.randint(0, 0xffff):x}"
    return rng.choice([
        f"2001:db8::{h()}", f"fe80::{h()}:{h()}:{h()}:{h()}", f"2001:0db8:85a3:0000:0000:8a2e:0370:{rng.randint(0x1000, 0xffff):04x}",
        f"::ffff:192.0.2.{rng.randint(1, 254)}", f"2408:8207:{h()}:{h()}::{h()}",
    ])


GEN = {"email": email, "phone": lambda: rng.choice([cn_mobile, intl_phone])(), "cn_id": cn_id, "card": card,
       "ip": lambda: rng.choice([ipv4, ipv4, ipv6])()}

POSITIVE = [
    "Please contact me at {email} if anything changes.",
    "My phone number is {phone}, call after 6pm.",
    "You can reach the on-call engineer on {phone}.",
    "Card number: {card}, expiry 12/27.",
    "The refund goes back to card {card}.",
    "The login came from {ip} at 10:32.",
    "Block {ip} in the firewall, it sent 4000 requests.",
    "Her resident ID number is {cn_id}.",
    "Send the invoice to {email} and copy {email}.",
    "Customer {email} called from {phone} about order 20240315.",
    "Server {ip} and backup {ip} both failed the health check.",
    "请联系我：{phone}，谢谢。",
    "我的邮箱是{email}，有问题请发邮件。",
    "身份证号码：{cn_id}",
    "银行卡号{card}已绑定。",
    "登录IP为{ip}，时间2024-03-05。",
    "手机{phone}，身份证{cn_id}，请核实。",
    "张先生的手机号是{phone}，邮箱{email}。",
    "请把款项打到{card}这张卡上。",
    "用户在{ip}登录失败了3次。",
    "我叫李雷，身份证号{cn_id}，住在北京市海淀区。",
    "联系电话 {phone} 或发送邮件至 {email}",
    "Ticket 4821: user {email} cannot log in from {ip}.",
    "Wire transfer to account card {card} failed twice.",
    "Applicant ID {cn_id}, phone {phone}.",
    "收件人电话：{phone}",
    "退款将退回至尾号对应的卡 {card}。",
    "服务器地址是 {ip}，端口 8080。",
    "Call me: {phone}",
    "email:{email}",
]

NEGATIVE = [
    "The meeting is on 2024-03-15 at 14:30:00.",
    "会议时间定在2024年3月15日下午2点。",
    "Order number 20240315123456 has shipped.",
    "订单号：{order}，请注意查收。",
    "Tracking number SF{order13} is in transit.",
    "快递单号 YT{order13} 已签收。",
    "We upgraded to version 10.0.19045.3693 last night.",
    "Python 3.11.4 and v1.2.3.4 are installed.",
    "The build is 1.2.3.4.5-beta.",
    "Address 256.100.1.1 is not a valid IPv4 address.",
    "The ratio was 3:2 and the scale 1:1000.",
    "MAC address 00:1A:2B:3C:4D:5E belongs to the printer.",
    "Use std::vector and std::io in C++ and Rust.",
    "The price is $12.99, or ¥1,234.56 in China.",
    "价格是￥1,299.00，优惠后999元。",
    "房间号 1203，邮编 100080。",
    "工号 A12345，部门编号 0021。",
    "Mention @everyone in the channel, not user@localhost.",
    "Write the address as name at example dot com.",
    "foo@bar is not a full address.",
    "Growth was +5% this quarter and +12.5% last year.",
    "1+2=3 and 12345 is a small number.",
    "Extension 8021 is the front desk.",
    "The ISBN is 978-7-111-54742-6.",
    "UUID 550e8400-e29b-41d4-a716-446655440000 identifies the job.",
    "The hash starts with e3b0c44298fc1c149afbf4c8996fb924.",
    "It happened at 12:30:45 on the 3rd.",
    "温度是+20.5度，湿度65%。",
    "身份证号码格式错误：{bad_id}",
    "这个号码{bad_id}校验位不对。",
    "The card {bad_card} was declined as invalid.",
    "Invoice {order} was paid on 2023/11/02.",
    "第{small}页到第{small}页。",
    "共有{small}人参加，{small}人缺席。",
    "Chapter 13, verse 8000.",
    "今天的日期是20240315。",
    "The year 1949 and the year 2024 are far apart.",
    "Build 127.0.0 has three parts, and 1.0 has two.",
    "Coordinates 39.9042, 116.4074 mark Beijing.",
    "Serial number {order} from batch 7.",
]


# Written by hand, not from the generators above: formats and contexts the patterns were not
# shaped around, kept whatever the detector makes of them.
HANDWRITTEN = [
    "客服热线：[[phone:+86 (10) 6552 9988]]，工作日9:00-18:00。",
    "Reach us at [[email:First.Last@sub.example-corp.io]] (please no attachments over 10MB).",
    "联系人：王芳 [[phone:186-0101-2233]]；备用邮箱[[email:wangfang_1990@126.com]]",
    "The VPN gateway is [[ip:203.0.113.7]]; the DNS server is [[ip:2606:4700:4700::1111]].",
    "Her number changed to [[phone:+1-202-555-0143]] last week.",
    "身份证[[cn_id:440305199003076512]]，户籍地深圳。",
    "身份证号44030519900307651X校验失败，请重新输入。",
    "Pay with [[card:6011 0009 9013 9424]] or with [[card:3782 822463 10005]].",
    "mailto:[[email:press@example.org]]?subject=hello",
    "从[[ip:192.0.2.55]]:443发起的连接被拒绝。",
    "WhatsApp me on [[phone:+44 7700 900123]].",
    "Meeting ID 845 2231 9087, passcode 123456.",
    "The tracking ID is 1Z999AA10123456784.",
    "Room 1208, building 3, No. 18 Zhongguancun Street.",
    "Temperatures ranged from -5 to 12 degrees; 2024-12-01 was the coldest.",
    "Version 2.0.0.1 fixed the crash; see issue #4521.",
    "订单金额 12,345.67 元，共 3 件商品。",
    "The answer is 42, and 6 x 7 = 42 too.",
    "Use the ratio 16:9 for video and 4:3 for slides.",
    "工单编号：2024120100001234。",
    "Call the front desk at extension 2201.",
]


def fill(template, mark):
    out = template
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        key = out[start + 1:end]
        if key in GEN:
            val = GEN[key]()
            rep = f"[[{key}:{val}]]" if mark else val
        elif key == "order":
            rep = not_luhn_digits(rng.randint(14, 18))
        elif key == "order13":
            rep = not_luhn_digits(13)
        elif key == "bad_id":
            rep = cn_id(valid=False)
            while luhn_ok(rep) or not rep[-1].isdigit():
                rep = cn_id(valid=False)
        elif key == "bad_card":
            rep = not_luhn_digits(16)
        elif key == "small":
            rep = str(rng.randint(1, 999))
        else:
            raise KeyError(key)
        out = out[:start] + rep + out[end + 1:]
    return out


lines = ["# PII corpus: one sentence per line; personal data marked [[category:text]].",
         "# Written by scripts/pii-corpus.py (synthetic values, fixed seed); do not edit by hand."]
for _ in range(7):
    for t in POSITIVE:
        lines.append(fill(t, True))
for _ in range(4):
    for t in NEGATIVE:
        lines.append(fill(t, False))
lines.extend(HANDWRITTEN)
lines = list(dict.fromkeys(lines))  # the fixed negatives repeat: keep each line once
OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
print(f"{len(lines) - 2} lines -> {OUT}")
