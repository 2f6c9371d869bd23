"""Jinja2 templates of the page (autoescaped; inline CSS, no script, nothing from a CDN); the fixed words come
from the message catalogues (:mod:`kgrec.messages`, ``m``)."""

from __future__ import annotations

import jinja2
from markupsafe import Markup

from kgrec.messages import messages

_CSS = """
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232a;background:#f4f6f8}
header{display:flex;align-items:center;justify-content:space-between;padding:10px 24px;background:#1f3b57;color:#fff}
header h1{font-size:18px;margin:0;font-weight:600}header form{margin:0}
main{padding:18px 24px;max-width:1500px}
.card{background:#fff;border:1px solid #d9dee4;border-radius:8px;padding:14px 18px;margin-bottom:16px}
form.inline{display:flex;gap:8px;align-items:end;flex-wrap:wrap}label{display:flex;flex-direction:column;font-size:13px;color:#4a5560}
input{font:inherit;padding:6px 8px;border:1px solid #b9c2cc;border-radius:5px;min-width:90px}input[type=number]{width:80px;min-width:0}
button{font:inherit;padding:6px 14px;border:0;border-radius:5px;background:#2f6f9f;color:#fff;cursor:pointer}
header button{background:#456b8f}
.error{background:#fdecea;border-color:#f0b4ae;color:#8a1f12}
.grid{display:grid;grid-template-columns:minmax(420px,1fr) minmax(420px,1.1fr);gap:16px;align-items:start}
@media (max-width:1000px){.grid{grid-template-columns:1fr}}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e6eaee;vertical-align:top}
th{font-size:12px;text-transform:uppercase;color:#5b6670}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.sel{background:#eaf3fb}.why{color:#4a5560;font-size:13px}a{color:#1f5f8f}
.meta{color:#4a5560;font-size:14px}ol.paths li{margin:6px 0}.kind{display:inline-block;font-size:11px;padding:1px 6px;border-radius:9px;background:#e6eaee;color:#33404c;margin-right:6px}
.strength{display:inline-block;font-size:11px;padding:0 6px;border-radius:9px;margin-left:4px;white-space:nowrap}
.strength.strong{background:#d7efdf;color:#1e5a33}.strength.medium{background:#fff1cc;color:#6b5200}.strength.weak{background:#eceff2;color:#4a5560}
.whynot{background:#fff7e6;border-color:#f0d49a}.notrec{color:#8a4b00}ul.history{margin:4px 0 0;padding-left:20px}
#customer h2,#recs h2,#detail h2{margin-top:0}
.drawing{width:100%;overflow-x:auto}svg.paths{width:100%;max-width:900px;height:auto;background:#fbfcfd;border:1px solid #e6eaee;border-radius:6px}
svg.paths text{font-family:system-ui,sans-serif}svg.narrow{display:none}
@media (max-width:600px){main{padding:10px}.card{padding:10px 12px}svg.wide{display:none}svg.narrow{display:block}
form.inline label{flex:1 1 40%}input{min-width:0;width:100%}}
"""

_BASE = """<!doctype html>
<html lang="{{ m['page.lang'] }}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{% block title %}kgrec{% endblock %}</title><style>{{ css }}</style></head>
<body><header><h1>{{ m['page.heading'] }}</h1>
{% if show_logout %}<form method="post" action="/logout"><button type="submit" id="logout">{{ m['page.logout'] }}</button></form>{% endif %}
</header><main>{% block main %}{% endblock %}</main></body></html>
"""

_LOGIN = """{% extends "base.html" %}{% block title %}{{ m['page.login_title'] }}{% endblock %}
{% block main %}
<div class="card" style="max-width:460px">
<h2>{{ m['page.login'] }}</h2>
<p class="meta">{{ m['page.login_hint'] }}</p>
{% if error %}<p class="card error" id="error">{{ error }}</p>{% endif %}
<form method="post" action="/login" class="inline">
<input type="hidden" name="next" value="{{ next }}">
<label>{{ m['page.token'] }}<input type="password" name="token" id="token" autocomplete="current-password" required autofocus></label>
<button type="submit" id="login">{{ m['page.login'] }}</button>
</form></div>
{% endblock %}
"""

_PAGE = """{% extends "base.html" %}{% block title %}kgrec{% if user %} · {{ m['page.user_title'] }} {{ user }}{% endif %}{% endblock %}
{% block main %}
<div class="card">
<form method="get" action="/" class="inline" id="user-form">
{% if lang != 'en' %}<input type="hidden" name="lang" value="{{ lang }}">{% endif %}<label>{{ m['page.user_id'] }}<input name="user" id="user" value="{{ user or '' }}" placeholder="{{ examples[0] if examples else '' }}" aria-describedby="user-hint" required></label>
<label>{{ m['page.how_many'] }}<input type="number" name="k" id="k" min="1" max="{{ max_k }}" value="{{ k }}"></label>
<label>{{ m['page.variety'] }}<input type="number" name="diversity" id="diversity" min="0" max="1" step="0.05" value="{{ diversity }}"></label>
<label>{{ m['page.variety_by'] }}<select name="diversity_by" id="diversity_by">{% for s in similarities %}<option value="{{ s }}"{% if s == diversity_by %} selected{% endif %}>{{ m['page.by_' ~ s] }}</option>{% endfor %}</select></label>
<label>{{ m['page.long_tail'] }} (0–{{ max_long_tail|round|int }})<input type="number" name="long_tail" id="long_tail" min="0" max="{{ max_long_tail }}" step="0.05" value="{{ long_tail }}"></label>
<button type="submit" id="show">{{ m['page.show'] }}</button>
</form>
<p class="meta" id="user-hint">{{ m('page.user_hint', examples=examples|join(', ')) }} {{ m('page.catalogue', users=health.users, items=health.items) }}</p>
</div>
{% if error %}<div class="card error" id="error" role="alert">{{ error }}</div>{% endif %}
{% if not recs and not error %}<p class="card meta" id="empty">{{ m['page.empty'] }}</p>{% endif %}
{% if recs %}
<section class="card" id="customer"><h2>{{ m('page.customer', user=recs.user) }}</h2>
{% if history %}<p>{{ m('page.recently', verb=verb) }}</p><ul class="history">{% for t in history %}<li>{{ t }}</li>{% endfor %}</ul>
{% else %}<p class="meta">{{ m['page.no_history'] }}</p>{% endif %}</section>
<div class="grid">
<section class="card" id="recs">
<h2>{{ m('page.top_for_user', n=recs.items|length, user=recs.user) }}</h2>
<table><thead><tr><th>#</th><th>{{ m['page.item'] }} · {{ m['page.reason'] }}</th></tr></thead><tbody>
{% for r in reasons %}
<tr class="rec{% if detail and detail.item == r.item %} sel{% endif %}">
<td class="num">{{ r.rank }}</td>
<td><a class="title" href="/?{{ {'user': recs.user, 'k': k, 'item': r.item}|urlencode }}{{ rerank_q }}#detail">{{ r.title }}</a>
<div class="why">{{ r.reason }} <span class="strength {{ r.strength }}">{{ m['page.' ~ r.strength] }}</span></div>{% if r.note %}<div class="why note">{{ r.note }}</div>{% endif %}</td></tr>
{% endfor %}
</tbody></table>
<form method="get" action="/#detail" class="inline" id="whynot-form" style="margin-top:14px">
<input type="hidden" name="user" value="{{ recs.user }}"><input type="hidden" name="k" value="{{ k }}">
{% if diversity %}<input type="hidden" name="diversity" value="{{ diversity }}">{% if diversity_by != 'vectors' %}<input type="hidden" name="diversity_by" value="{{ diversity_by }}">{% endif %}{% endif %}{% if long_tail %}<input type="hidden" name="long_tail" value="{{ long_tail }}">{% endif %}{% if lang != 'en' %}<input type="hidden" name="lang" value="{{ lang }}">{% endif %}
<label>{{ m['page.why_not_label'] }}<input name="whynot" id="whynot" value="{{ whynot or '' }}" required></label>
<button type="submit" id="ask">{{ m['page.why_not'] }}</button>
</form>
{% if candidates %}
<div id="candidates"><p class="meta">{{ m('page.several_match', q=whynot) }}</p><ul>
{% for c in candidates %}<li><a href="/?{{ {'user': recs.user, 'k': k, 'item': c.item}|urlencode }}{{ rerank_q }}#detail">{{ c.title }}</a> <span class="meta">({{ c.item }})</span></li>{% endfor %}
</ul></div>
{% endif %}
</section>
{% if detail %}
<section class="card" id="detail">
<h2 id="detail-title">{{ detail.title }}</h2>
<p class="meta" id="detail-meta">{{ m['page.item_word'] }} {{ detail.item }} ·
{% if detail.interacted %}{{ m['page.in_history'] }}{% elif detail.rank > detail.k %}<strong class="notrec">{{ m('page.not_recommended_at', rank=detail.rank, k=detail.k) }}</strong>{% else %}{{ m('page.recommended_at', rank=detail.rank, k=detail.k) }}{% endif %}</p>
{% if detail.message %}<p class="card{% if detail.rank > detail.k %} whynot{% endif %}" id="message">{{ detail.message }}</p>{% endif %}
{% if detail_paths %}
<h3>{% if detail.rank > detail.k %}{{ m['page.how_linked'] }}{% else %}{{ m['page.why_recommended'] }}{% endif %}</h3>
<ol class="paths" id="paths">
{% for text, strength, kind in detail_paths %}<li><span class="kind k-{{ kind }}">{{ m['kind.' ~ kind] }}</span><span class="sentence">{{ text }}</span> <span class="strength {{ strength }}">{{ m['page.' ~ strength] }}</span></li>{% endfor %}
</ol>
<div class="drawing">{{ svg }}</div>
{% endif %}
</section>
{% endif %}
</div>
{% endif %}
{% endblock %}
"""

_ERROR = """{% extends "base.html" %}{% block title %}{{ m['page.error_title'] }} {{ code }}{% endblock %}
{% block main %}
<div class="card error" id="error" role="alert">{{ message }}</div>
<p class="meta"><a href="/">{{ m['page.back'] }}</a></p>
{% endblock %}
"""

_TEMPLATES = {"base.html": _BASE, "login.html": _LOGIN, "page.html": _PAGE, "error.html": _ERROR}


def environment() -> jinja2.Environment:
    """The template environment: every ``{{ value }}`` is HTML-escaped."""
    env = jinja2.Environment(loader=jinja2.DictLoader(_TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals["css"] = Markup(_CSS)
    # the fixed words (kgrec.messages): English unless a page passes another catalogue as ``m`` (?lang=)
    env.globals["m"] = messages()
    env.globals["lang"] = "en"
    return env
