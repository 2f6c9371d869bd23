"""Message catalogues: explanation sentences and the support page's fixed words, per language.

English (``en``) is the default and the reference: every key of another catalogue is one of its keys, and a key a
catalogue lacks falls back to English. Simplified Chinese (``zh``) is provided. The CLI takes ``--lang zh``
(``explain``, ``recommend``, ``export --explain``), the web page and API ``?lang=zh``, Python ``lang="zh"``.

Messages are :meth:`str.format` templates with named fields (``{verb}``, ``{anchor}``, ``{item}``…). Data (titles,
category names, relation names) is never translated; only the words around it are.

A ground-floor module: it imports nothing of kgrec but :mod:`kgrec.errors`, so every layer may use it.
"""

from __future__ import annotations

import functools
from types import MappingProxyType
from typing import Any

from kgrec.errors import ConfigError

DEFAULT_LANG = "en"

EN: dict[str, str] = {
    # ---- explanation sentences (kgrec.fusion.explain)
    "path.category": "Recommended because you {verb} {anchor}, which is {via} like {item}.",
    "path.keyword": "Recommended because you {verb} {anchor}, which, like {item}, is about “{via}”.",
    "path.tag": "Recommended because you tagged items “{via}”, and {item} is about “{via}” too.",
    "path.entity.same": "Recommended because you {verb} {anchor}, which shares {rel_a} {via} with {item}.",
    "path.entity.other": "Recommended because you {verb} {anchor} ({rel_a} {via}), and {item} has {rel_b} {via}.",
    "path.user": "Recommended because {via_name}, who also {verb} {anchor} like you, {verb} {item}.",
    "path.attribute": "Recommended because people who share your {name}, {value}, {verb} {item}.",
    "path.cooccurrence": "Recommended because people who {verb} {anchor} also {verb} {item}.",
    "explain.interacted": "User {user} already {verb} {title}; it is not recommended again.",
    "explain.outside": "{title} is ranked {rank} for user {user}, outside the top {k} (score {gap:.3f} below the {k}th item).",
    "explain.no_path": "No path of at most 3 hops links user {user} to {title}.",
    "explain.text_only": (
        " Nobody has {verb} {title} yet, and none of its categories, keywords or facts links it to user"
        " {user}'s history: the model knows it only by its text (title, description), which is closest"
        " to that of {nearest}, which user {user} {verb}."
    ),
    "node.user": "user {id}",
    "node.attribute": "{name}: {value}",
    # ---- path sentences for support staff (third person; kgrec.fusion.whynot.staff_sentence)
    "staff.category": "Recommended because they {verb} {anchor}, which is also in “{via}”.",
    "staff.keyword": "Recommended because they {verb} {anchor}, which is also about “{via}”.",
    "staff.tag": "Recommended because they tagged items “{via}”, and {item} is about “{via}” too.",
    "staff.entity.same": "Recommended because they {verb} {anchor}, which, like {item}, is {rel_a} {via}.",
    "staff.entity.other": "Recommended because they {verb} {anchor} ({rel_a} {via}), and {item} is {rel_b} {via}.",
    "staff.user": "Recommended because another customer who also {verb} {anchor} {verb} {item}.",
    "staff.attribute": "Recommended because people with the same {name} as theirs ({value}) {verb} {item}.",
    "staff.cooccurrence": "Recommended because people who {verb} {anchor}, as they did, also {verb} {item}.",
    # ---- the same for an item that is NOT recommended: a link to the history, not a reason
    "link.category": "Linked to their history: they {verb} {anchor}, which is also in “{via}”, but that is not enough.",
    "link.keyword": "Linked to their history: they {verb} {anchor}, which is also about “{via}”, but that is not enough.",
    "link.tag": "Linked to their history: they tagged items “{via}”, and {item} is about “{via}” too, but that is not enough.",
    "link.entity.same": "Linked to their history: they {verb} {anchor}, which, like {item}, is {rel_a} {via}, but that is not enough.",
    "link.entity.other": "Linked to their history: they {verb} {anchor} ({rel_a} {via}), and {item} is {rel_b} {via}, but that is not enough.",
    "link.user": "Linked to their history: another customer who also {verb} {anchor} {verb} {item}, but that is not enough.",
    "link.attribute": "Linked to their profile: people with the same {name} ({value}) {verb} {item}, but that is not enough.",
    "link.cooccurrence": "Linked to their history: people who {verb} {anchor} also {verb} {item}, but that is not enough.",
    # ---- why an item is not recommended (kgrec.fusion.whynot.why_not)
    "whynot.head": "{title} is NOT recommended to user {user}: it is ranked {rank}, outside the top {k}.",
    "whynot.lacks": "The recommended items are linked to this customer's history through {have}; {title} is not.",
    "whynot.shared": "{title} is linked to it through {shared} too, but more weakly than the recommended items.",
    "whynot.own": "{title} is linked to their history only through {own}, which the recommended items do not rely on.",
    "whynot.no_link": "No category, keyword or fact links {title} to their history.",
    "whynot.recent": "Lately they {verb} {recent}.",
    "whynot.change": "It would move up if the customer {verb} more items like {title}.",
    "list.sep": ", ",
    "list.and": " and ",
    # ---- the support page's fixed words (kgrec.web.templates)
    "page.lang": "en",
    "page.heading": "kgrec · recommendations explained",
    "page.logout": "Log out",
    "page.login_title": "kgrec · log in",
    "page.login": "Log in",
    "page.login_hint": "Enter the access token you were given.",
    "page.token": "Access token",
    "page.user_title": "user",
    "page.user_id": "User id",
    "page.how_many": "How many",
    "page.variety": "Variety (0–1)",
    "page.variety_by": "Variety by",
    "page.by_vectors": "what people choose together (item vectors)",
    "page.by_categories": "categories (e.g. genres)",
    "page.by_both": "both",
    "page.long_tail": "Long tail",
    "page.show": "Show recommendations",
    "page.model": "Model",
    "page.store": "store",
    "page.users": "users",
    "page.items": "items",
    "page.top_for_user": "Top {n} for user {user}",
    "page.item": "Item",
    "page.score": "Score",
    "page.why_not_label": "Why not…? (item id or title)",
    "page.why_not": "Why not?",
    "page.several_match": "Several items match “{q}”; pick one:",
    "page.item_word": "item",
    "page.user_word": "user",
    "page.in_history": "already in the user's history",
    "page.rank": "rank",
    "page.score_word": "score",
    "page.structure": "structure",
    "page.text": "text",
    "page.why_paths": "Why: {n} strongest of {total} paths",
    "page.error_title": "kgrec · error",
    "page.back": "Back to the page",
    "page.svg_title": "paths from user {user} to {title}",
    "page.user_hint": "User ids look like {examples}.",
    "page.catalogue": "{users} customers, {items} items",
    "page.customer": "Customer {user}",
    "page.recently": "Recently {verb}:",
    "page.no_history": "No history yet.",
    "page.reason": "Why",
    "page.strong": "strong",
    "page.medium": "medium",
    "page.weak": "weak",
    "page.recommended_at": "Recommended: number {rank} of the top {k}",
    "page.not_recommended_at": "Not recommended: ranked {rank} (only the top {k} are recommended)",
    "page.why_recommended": "Why it is recommended",
    "page.how_linked": "How it is linked to the customer (not enough to be recommended)",
    "page.unknown_user": "No customer with id “{user}”: this model does not know that user. Ids that exist: {examples}.",
    "page.legend": "Lines",
    "page.empty": "Type a customer's user id to see what is recommended to them and why.",
    "kind.category": "category",
    "kind.keyword": "keyword",
    "kind.tag": "their tag",
    "kind.entity": "fact",
    "kind.user": "similar customer",
    "kind.attribute": "profile",
    "kind.cooccurrence": "chosen together",
}

ZH: dict[str, str] = {
    "path.category": "推荐理由：你{verb}{anchor}，它和{item}一样属于“{via}”。",
    "path.keyword": "推荐理由：你{verb}{anchor}，它和{item}一样与“{via}”有关。",
    "path.tag": "推荐理由：你给物品加过标签“{via}”，而{item}也与“{via}”有关。",
    "path.entity.same": "推荐理由：你{verb}{anchor}，它与{item}有相同的{rel_a}：{via}。",
    "path.entity.other": "推荐理由：你{verb}{anchor}（{rel_a}：{via}），而{item}的{rel_b}也是{via}。",
    "path.user": "推荐理由：{via_name}和你一样{verb}{anchor}，也{verb}{item}。",
    "path.attribute": "推荐理由：和你{name}相同（{value}）的人常常{verb}{item}。",
    "path.cooccurrence": "推荐理由：{verb}{anchor}的人也常常{verb}{item}。",
    "explain.interacted": "用户 {user} 已经{verb}{title}，不会再次推荐。",
    "explain.outside": "{title}在用户 {user} 的推荐中排第 {rank} 名，不在前 {k} 名之内（分数比第 {k} 名低 {gap:.3f}）。",
    "explain.no_path": "没有不超过 3 跳的路径把用户 {user} 和{title}连起来。",
    "explain.text_only": (
        "还没有人{verb}{title}，它的类别、关键词和事实也都与用户 {user} 的历史无关：模型只通过它的文本"
        "（标题、描述）认识它，其文本与用户 {user} {verb}的{nearest}最接近。"
    ),
    "node.user": "用户 {id}",
    "node.attribute": "{name}：{value}",
    "staff.category": "推荐理由：该用户{verb}{anchor}，它也属于“{via}”。",
    "staff.keyword": "推荐理由：该用户{verb}{anchor}，它也与“{via}”有关。",
    "staff.tag": "推荐理由：该用户给物品加过标签“{via}”，而{item}也与“{via}”有关。",
    "staff.entity.same": "推荐理由：该用户{verb}{anchor}，它与{item}的{rel_a}都是{via}。",
    "staff.entity.other": "推荐理由：该用户{verb}{anchor}（{rel_a}：{via}），而{item}的{rel_b}也是{via}。",
    "staff.user": "推荐理由：另一位也{verb}{anchor}的用户{verb}{item}。",
    "staff.attribute": "推荐理由：与该用户{name}相同（{value}）的人常常{verb}{item}。",
    "staff.cooccurrence": "推荐理由：和该用户一样{verb}{anchor}的人也{verb}{item}。",
    "link.category": "与其历史的联系：该用户{verb}{anchor}，它也属于“{via}”，但这还不够。",
    "link.keyword": "与其历史的联系：该用户{verb}{anchor}，它也与“{via}”有关，但这还不够。",
    "link.tag": "与其历史的联系：该用户给物品加过标签“{via}”，{item}也与之有关，但这还不够。",
    "link.entity.same": "与其历史的联系：该用户{verb}{anchor}，它与{item}的{rel_a}都是{via}，但这还不够。",
    "link.entity.other": "与其历史的联系：该用户{verb}{anchor}（{rel_a}：{via}），{item}的{rel_b}也是{via}，但这还不够。",
    "link.user": "与其历史的联系：另一位也{verb}{anchor}的用户{verb}{item}，但这还不够。",
    "link.attribute": "与其资料的联系：{name}相同（{value}）的人常常{verb}{item}，但这还不够。",
    "link.cooccurrence": "与其历史的联系：{verb}{anchor}的人也{verb}{item}，但这还不够。",
    "whynot.head": "{title}没有推荐给用户 {user}：它排第 {rank} 名，不在前 {k} 名之内。",
    "whynot.lacks": "推荐的物品通过{have}与该用户的历史相连；{title}没有。",
    "whynot.shared": "{title}也通过{shared}与其历史相连，但比推荐的物品弱。",
    "whynot.own": "{title}只通过{own}与其历史相连，而推荐的物品并不依赖这些。",
    "whynot.no_link": "没有任何类别、关键词或事实把{title}与其历史连起来。",
    "whynot.recent": "该用户最近{verb}{recent}。",
    "whynot.change": "如果该用户{verb}更多与{title}相似的物品，它的排名就会上升。",
    "list.sep": "、",
    "list.and": "和",
    "page.lang": "zh-Hans",
    "page.heading": "kgrec · 推荐及其理由",
    "page.logout": "退出",
    "page.login_title": "kgrec · 登录",
    "page.login": "登录",
    "page.login_hint": "请输入你拿到的访问令牌。",
    "page.token": "访问令牌",
    "page.user_title": "用户",
    "page.user_id": "用户 ID",
    "page.how_many": "数量",
    "page.variety": "多样性（0–1）",
    "page.variety_by": "多样性依据",
    "page.by_vectors": "共同选择（物品向量）",
    "page.by_categories": "类别（如类型）",
    "page.by_both": "两者",
    "page.long_tail": "长尾",
    "page.show": "显示推荐",
    "page.model": "模型",
    "page.store": "存储",
    "page.users": "个用户",
    "page.items": "个物品",
    "page.top_for_user": "用户 {user} 的前 {n} 个推荐",
    "page.item": "物品",
    "page.score": "分数",
    "page.why_not_label": "为什么没有推荐……？（物品 ID 或标题）",
    "page.why_not": "为什么没有？",
    "page.several_match": "有多个物品与“{q}”匹配，请选择一个：",
    "page.item_word": "物品",
    "page.user_word": "用户",
    "page.in_history": "已在该用户的历史中",
    "page.rank": "排名",
    "page.score_word": "分数",
    "page.structure": "结构",
    "page.text": "文本",
    "page.why_paths": "理由：{total} 条路径中最强的 {n} 条",
    "page.error_title": "kgrec · 错误",
    "page.back": "返回页面",
    "page.svg_title": "从用户 {user} 到{title}的路径",
    "page.user_hint": "用户 ID 形如 {examples}。",
    "page.catalogue": "{users} 个用户，{items} 个物品",
    "page.customer": "用户 {user}",
    "page.recently": "最近{verb}：",
    "page.no_history": "还没有历史记录。",
    "page.reason": "理由",
    "page.strong": "强",
    "page.medium": "中",
    "page.weak": "弱",
    "page.recommended_at": "已推荐：前 {k} 名中的第 {rank} 名",
    "page.not_recommended_at": "未推荐：排第 {rank} 名（只推荐前 {k} 名）",
    "page.why_recommended": "推荐理由",
    "page.how_linked": "它与该用户的联系（不足以被推荐）",
    "page.unknown_user": "没有 ID 为“{user}”的用户：模型不认识这个用户。存在的 ID 例如：{examples}。",
    "page.legend": "连线",
    "page.empty": "输入用户 ID，查看推荐给该用户的物品及理由。",
    "kind.category": "类别",
    "kind.keyword": "关键词",
    "kind.tag": "其标签",
    "kind.entity": "事实",
    "kind.user": "相似用户",
    "kind.attribute": "资料",
    "kind.cooccurrence": "常被一起选择",
}

#: the interaction verb of the config (English) in each other language; a verb not listed is used as it is
VERBS: dict[str, dict[str, str]] = {
    "zh": {
        "interacted with": "选择过",
        "rated": "评价过",
        "watched": "看过",
        "bought": "买过",
        "read": "读过",
        "listened to": "听过",
        "clicked": "点击过",
        "liked": "喜欢过",
    },
}

CATALOGUES: dict[str, dict[str, str]] = {"en": EN, "zh": ZH}
#: the languages provided
LANGUAGES = tuple(CATALOGUES)


def check_lang(lang: str | None) -> str:
    """``lang`` if a catalogue exists for it (None: the default), else a :class:`ConfigError` listing them."""
    if lang is None:
        return DEFAULT_LANG
    if lang not in CATALOGUES:
        raise ConfigError(f"lang={lang!r}: no message catalogue for it; expected one of {list(LANGUAGES)}")
    return lang


class Messages:
    """The catalogue of one language: ``m("path.tag", via="x", item="Y")``; missing keys fall back to English."""

    def __init__(self, lang: str | None = None) -> None:
        self.lang = check_lang(lang)
        self.table = MappingProxyType({**EN, **CATALOGUES[self.lang]})

    def __call__(self, key: str, **fields: Any) -> str:
        return self.table[key].format(**fields) if fields else self.table[key]

    def __getitem__(self, key: str) -> str:
        return self.table[key]

    def verb(self, verb: str) -> str:
        """The config's interaction verb in this language."""
        return VERBS.get(self.lang, {}).get(verb, verb)


def messages(lang: str | None = None) -> Messages:
    """The :class:`Messages` of ``lang`` (default English): one object per language, made once (a catalogue is a
    constant; an explained export renders one sentence per row)."""
    return _messages(check_lang(lang))


@functools.cache
def _messages(lang: str) -> Messages:
    return Messages(lang)
