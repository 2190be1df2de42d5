"""
Display names for the search benchmark, shaped like a Chinese live-streaming
app's users: real Chinese names (surname + one or two given-name characters,
drawn with a Zipf-like weight from common-character lists, so 王/李/张 are as
crowded as in life), Chinese nicknames, pinyin and English nicknames (with
digits, CamelCase, spaces), mixes with emoji, and some users without a name.
Deterministic for a seed.
"""

from __future__ import annotations

import random

# the most common surnames, most common first (a few compound ones at the end)
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
            "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔"
            "向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌"
            "毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦"
            "麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩"
            "明佘池乜")
#: percent of people with each of the first surnames above (王 7.1 ... 罗 0.85); the rest share a tail
TOP_SURNAME_PERCENT = (7.1, 7.0, 6.7, 5.4, 4.5, 3.1, 2.2, 2.0, 1.9, 1.9, 1.3, 1.2, 1.1, 1.1, 1.0, 0.97, 0.9, 0.9,
                       0.87, 0.85)
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "慕容", "东方", "皇甫", "令狐")
# common given-name characters, roughly most common first
GIVEN = ("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鑫宇浩然子轩梓涵一诺欣怡雨泽博文"
         "思晨嘉瑞佳琪晓梦婷雪慧建国志云飞鹏辉俊峰海波林斌宁凯旭东晶颖琳倩丹蕾薇莉菲露瑶璐妍娇媛婉韵馨悦乐欢"
         "笑语诗画书琴棋墨晴阳光亮辰星月天宸睿哲瀚煜铭晟皓昊锦程翔宏伟健康安泰福祥瑞龙凤麟鹤松柏竹梅兰菊荷"
         "莲清源溪河江湖波涛洪浩淼冰霜露雯霏雅婧婕嫣妮娅姗珊琦瑾瑜璇琼珍珠宝贝彤彦然宁静怡心思念远航帆舟"
         "振兴家豪德仁义礼智信忠孝勤俭诚毅勋功成立新春夏秋冬梓萱若汐沐可馨紫依佩茹蓉蓓蕊芸茜芮菲霖桐楠杉"
         "凡帅正永长荣富贵庆喜金银铁钢锋鑫森磊焱垚淼晶")
NICK_PREFIX = ("小", "阿", "大", "老", "")
NICK_WORDS = ("快乐", "可爱", "宝宝", "天使", "公主", "小猫", "月亮", "星星", "糖果", "甜心", "微笑", "阳光",
              "彩虹", "梦想", "温柔", "少年", "姑娘", "先生", "女王", "大叔", "兔子", "熊猫", "奶茶", "咖啡",
              "樱花", "清风", "明月", "故事", "旅行", "音乐", "吃货", "主播", "歌手", "舞者", "小鱼", "萌萌")
PINYIN_SURNAMES = ("wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun", "ma",
                   "zhu", "hu", "guo", "he", "gao", "lin", "luo", "zheng", "liang", "xie", "song", "tang", "han",
                   "feng", "deng", "cao", "peng", "zeng", "xiao", "tian", "dong", "yuan", "pan", "yu", "jiang",
                   "cai", "du", "ye", "cheng", "su", "wei", "lv", "ding", "ren", "shen", "yao", "lu", "cui",
                   "zhong", "tan", "fan", "jin", "shi", "jia", "xia", "fang", "bai", "meng", "xiong", "qin",
                   "qiu", "yin", "xue", "yan", "duan", "lei", "hou", "long", "tao", "gu", "mao", "hao", "gong",
                   "shao", "wan", "qian", "dai", "mo", "kong", "xiang")
PINYIN_GIVEN = ("wei", "fang", "na", "xiu", "ying", "min", "jing", "li", "qiang", "lei", "jun", "yang", "yong",
                "yan", "jie", "juan", "tao", "ming", "chao", "lan", "xia", "ping", "gang", "hua", "yu", "hao",
                "ran", "xuan", "han", "nuo", "xin", "yi", "ze", "bo", "wen", "si", "chen", "jia", "rui", "qi",
                "meng", "ting", "xue", "hui", "zhi", "yun", "fei", "peng", "feng", "hai", "bin", "ning", "kai",
                "xu", "dong", "xiao", "le", "huan", "shu", "qin", "yue", "tian", "chen", "rong", "an")
ENGLISH = ("lucky", "angel", "kiki", "coco", "lily", "jack", "tony", "amy", "leo", "sunny", "happy", "candy",
           "momo", "baby", "king", "queen", "star", "moon", "cat", "dream", "smile", "cool", "sweet", "honey",
           "panda", "tiger", "dragon", "summer", "rain", "snow", "kitty", "bear", "bunny", "lemon", "peach",
           "cherry", "apple", "mia", "emma", "kevin", "eric", "jason", "vivian", "grace", "alice", "ivy", "zoe",
           "max", "sky", "ocean", "shadow", "ghost", "hero", "boss", "mr", "miss", "little", "big", "super")
EMOJI = ("🐱", "🐶", "🌸", "🍀", "⭐", "🌙", "❤️", "😊", "😂", "🔥", "✨", "🎵", "💕", "🌈", "🍓", "🐰", "🦋", "🍭")

#: share of each kind of name
KINDS = (("chinese", 0.55), ("nickname", 0.15), ("latin", 0.22), ("mixed", 0.06), ("empty", 0.02))


def _zipf_weights(n: int, s: float = 1.0) -> list[float]:
    return [1.0 / (i + 1) ** s for i in range(n)]


class NameGenerator:
    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self._surnames = list(dict.fromkeys(SURNAMES))
        tail = [0.8 / (i + 1) ** 0.6 for i in range(len(self._surnames) - len(TOP_SURNAME_PERCENT))]
        self._surname_cum = _cumulative(list(TOP_SURNAME_PERCENT) + tail)
        self._given = list(dict.fromkeys(GIVEN))
        self._given_cum = _cumulative(_zipf_weights(len(self._given), 0.6))
        self._kinds = [k for k, _ in KINDS]
        self._kind_cum = _cumulative([w for _, w in KINDS])

    def _pick(self, items, cum):
        return self.rng.choices(items, cum_weights=cum)[0]

    def kind(self) -> str:
        return self._pick(self._kinds, self._kind_cum)

    def chinese(self) -> str:
        r = self.rng.random()
        surname = self.rng.choice(COMPOUND_SURNAMES) if r < 0.005 else self._pick(self._surnames, self._surname_cum)
        given_len = 1 if self.rng.random() < 0.25 else (2 if self.rng.random() < 0.93 else 3)
        return surname + "".join(self._pick(self._given, self._given_cum) for _ in range(given_len))

    def nickname(self) -> str:
        r = self.rng.random()
        if r < 0.35:
            name = self.rng.choice(NICK_PREFIX) + self._pick(self._given, self._given_cum)
            if self.rng.random() < 0.5:
                name += name[-1]  # 小美美, 阿杰杰
        elif r < 0.7:
            name = self.rng.choice(NICK_WORDS) + self.rng.choice(("", "的", "")) + self.rng.choice(NICK_WORDS)
        else:
            name = self.rng.choice(NICK_PREFIX) + self.rng.choice(NICK_WORDS)
        if self.rng.random() < 0.15:
            name += self.rng.choice(EMOJI)
        return name

    def latin(self) -> str:
        r = self.rng.random()
        rng = self.rng
        if r < 0.4:  # pinyin name
            s = rng.choice(PINYIN_SURNAMES)
            g = "".join(rng.choice(PINYIN_GIVEN) for _ in range(rng.choice((1, 2, 2))))
            style = rng.random()
            if style < 0.4:
                name = s + g
            elif style < 0.7:
                name = s.capitalize() + " " + g.capitalize()
            elif style < 0.85:
                name = g.capitalize() + s.capitalize()
            else:
                name = g
        elif r < 0.8:  # English word(s)
            name = rng.choice(ENGLISH)
            if rng.random() < 0.3:
                name += rng.choice(ENGLISH).capitalize()
            if rng.random() < 0.5:
                name = name.capitalize()
        else:  # pinyin given name as a nickname
            name = rng.choice(("xiao", "a", "da", "")) + rng.choice(PINYIN_GIVEN) + rng.choice(PINYIN_GIVEN)
        if rng.random() < 0.35:
            name += rng.choice(("", "_", "")) + str(rng.choice((rng.randrange(10, 100), rng.randrange(1980, 2010),
                                                              rng.randrange(100, 1000), 520, 666, 888)))
        return name[:20]

    def mixed(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.4:
            return rng.choice(ENGLISH).capitalize() + self.nickname()
        if r < 0.7:
            return rng.choice(EMOJI) + self.chinese()
        return self.latin()[:10] + rng.choice(EMOJI) + rng.choice(EMOJI)

    def name(self) -> tuple[str, str]:
        kind = self.kind()
        if kind == "empty":
            return kind, ""
        return kind, getattr(self, kind)()[:20]


def _cumulative(weights: list[float]) -> list[float]:
    total = 0.0
    out = []
    for w in weights:
        total += w
        out.append(total)
    return out
