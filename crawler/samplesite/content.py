"""The articles of the sample web, and the transformations reposting sites apply to them.

Why this exists: extraction, normalization and deduplication can only be measured against text
that is known exactly. Every article here has a stable id and a clean Simplified body; the sample
sites wrap it in chrome, repost it, convert it, and the ground truth says what should come back.

* :data:`ARTICLES`: the base articles, read from ``data/articles.toml``: clean originals of the
  five texts in ``shared/samples/`` plus articles written for the sample web (news and notices;
  a notice ends with its issuing body and date, which are content); then the policy documents of
  ``data/policies.toml``, with their document numbers (发文字号) and dates of writing (成文日期).
* :func:`generated_article`: filler articles for large webs, assembled deterministically from the
  sentences of the base articles, each with its own id, title, date and agency.
* :func:`with_added_paragraph` / :func:`with_cut_paragraph`: the near-duplicate reposts.
* :func:`to_traditional`: what the repost portal does (Traditional characters, with pinyin readings
  inserted after some characters, e.g. ``部長(zhǎng)``); :func:`to_simplified` undoes it exactly for
  every article here (a test checks the round trip).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import tomllib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import cache, lru_cache
from importlib import resources

from crawler.samplesite.files import SampleFile

GENERATED_PREFIX = "gen-"


@dataclass(frozen=True, slots=True)
class Article:
    """One article: what a perfect extractor returns for its pages (``text``) and its metadata."""

    id: str
    title: str
    date: str  # ISO date, e.g. "2024-03-15"
    paragraphs: tuple[str, ...]
    agency: str | None = None
    author: str | None = None
    attachment: str | None = None  # title of a linked PDF; its "附件：" paragraph is in the body
    extra: str | None = None  # the paragraph a repost adds (see with_added_paragraph)
    source: str = ""  # provenance
    document_number: str | None = None  # 发文字号 in its standard form, e.g. 浙科发高〔2024〕12号
    number_display: str | None = None  # how its portal prints the number, when that differs
    written: str | None = None  # 成文日期 (ISO) when it differs from ``date``
    #: Attachments with their own text (PDF, DOCX) or none (WPS), each linked from its
    #: "附件N：title" (or "附件：title") paragraph; see crawler.samplesite.files.
    files: tuple[SampleFile, ...] = ()

    @property
    def text(self) -> str:
        """The expected clean text: paragraphs joined with newlines, no title."""
        return "\n".join(self.paragraphs)

    @property
    def day(self) -> dt.date:
        return dt.date.fromisoformat(self.date)


def _paragraphs(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _load_articles(name: str) -> tuple[Article, ...]:
    raw = resources.files(__package__).joinpath("data").joinpath(name).read_text(encoding="utf-8")
    articles = []
    files: dict[str, SampleFile] = {}  # by name: a file named again is the same file
    for item in tomllib.loads(raw)["article"]:
        body = item.pop("body")
        linked = []
        for spec in item.pop("files", []):
            if spec["name"] not in files:
                text = _paragraphs(spec.pop("text", ""))
                files[spec["name"]] = SampleFile(paragraphs=text, **spec)
            linked.append(files[spec["name"]])
        articles.append(Article(paragraphs=_paragraphs(body), files=tuple(linked), **item))
    return tuple(articles)


#: The articles generated ones draw their sentences from, in file order (samples first).
_BASE: tuple[Article, ...] = _load_articles("articles.toml")
#: Every article of the sample web: the base articles, then the policy documents.
ARTICLES: tuple[Article, ...] = _BASE + _load_articles("policies.toml")
_BY_ID = {a.id: a for a in ARTICLES}


def get_article(article_id: str) -> Article:
    """A base article by id, or a generated one (``gen-000042``)."""
    if article_id.startswith(GENERATED_PREFIX):
        return generated_article(int(article_id.removeprefix(GENERATED_PREFIX)))
    return _BY_ID[article_id]


def article_date(article_id: str) -> date:
    """An article's date, cheaply (generated articles are not built)."""
    if article_id.startswith(GENERATED_PREFIX):
        return generated_date(int(article_id.removeprefix(GENERATED_PREFIX)))
    return _BY_ID[article_id].day


def expected_text(article_id: str) -> str:
    """The clean text of an article's original page (paragraphs joined with ``"\\n"``)."""
    return get_article(article_id).text


# -- repost variants ------------------------------------------------------------------------------


def with_added_paragraph(article: Article) -> Article:
    """The article as a repost that appends a short paragraph of its own (a near duplicate)."""
    extra = article.extra or f"（本文转载自{article.agency or '有关部门'}网站，内容如有调整以原文为准。）"
    return replace(article, paragraphs=(*article.paragraphs, extra))


def with_cut_paragraph(article: Article) -> Article:
    """The article as a repost that drops its shortest paragraph after the first (a near duplicate).

    Dropping the shortest one keeps the repost as similar as a real cut usually is.
    """
    if len(article.paragraphs) < 3:
        return article
    body = article.paragraphs[1:]
    drop = 1 + body.index(min(body, key=len))
    return replace(article, paragraphs=article.paragraphs[:drop] + article.paragraphs[drop + 1 :])


# -- Traditional with pinyin readings -------------------------------------------------------------

# The readings the repost portal of shared/samples/000-003 inserts, taken from those texts.
_READINGS_TABLE = """
業yè 創chuàng 產chǎn 區qū 發fā 聯lián 設shè 調diào 進jìn 經jīng 會huì 實shí 濟jì 動dòng 協xié
術shù 戰zhàn 環huán 關guān 國guó 點diǎn 務wù 現xiàn 長zhǎng 規guī 構gòu 導dǎo 機jī 領lǐng 農nóng
強qiáng 結jié 學xué 對duì 內nèi 驅qū 優yōu 礎chǔ 認rèn 級jí 數shù 態tài 節jié 計jì 細xì 開kāi
轉zhuǎn 標biāo 場chǎng 項xiàng 負fù 責zé 團tuán 識shí 個gè 補bǔ 續xù 統tǒng 來lái 見jiàn 說shuō
過guò 當dāng 習xí 營yíng 堅jiān 衛wèi 遠yuǎn 達dá 權quán 請qǐng 網wǎng 應yīng 獻xiàn 穩wěn 復fù 風fēng
"""
READINGS: dict[str, str] = {item[0]: item[1:] for item in _READINGS_TABLE.split()}
_PINYIN = "a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü"
_READING_RE = re.compile(rf"(?<=[\u3400-\u9fff])\([{_PINYIN}]+\)")
# OpenCC's s2t picks forms that t2s does not map back (批复 -> 批覆 stays 批覆); the portal's forms do.
_S2T_FIXES = {"羣": "群", "批覆": "批復"}


@cache
def _converter(config: str) -> Callable[[str], str]:
    import opencc  # imported lazily: loading the dictionaries costs time nobody else should pay

    return opencc.OpenCC(config).convert


def _annotated(key: str) -> frozenset[str]:
    """The characters one article gets readings for: a stable ~60% of the table, like the portal."""
    return frozenset(c for c in READINGS if zlib.crc32(f"{key}:{c}".encode()) % 100 < 60)


def to_traditional(text: str, *, key: str, readings: bool = True) -> str:
    """Convert to Traditional and insert readings after the annotated characters (deterministic)."""
    converted = _converter("s2t")(text)
    for wrong, right in _S2T_FIXES.items():
        converted = converted.replace(wrong, right)
    if not readings:
        return converted
    chosen = _annotated(key)
    return "".join(f"{c}({READINGS[c]})" if c in chosen else c for c in converted)


def strip_readings(text: str) -> str:
    """Remove pinyin readings inserted after Chinese characters (``長(zhǎng)`` -> ``長``)."""
    return _READING_RE.sub("", text)


def to_simplified(text: str) -> str:
    """Undo :func:`to_traditional`: strip the readings, convert to Simplified."""
    return _converter("t2s")(strip_readings(text))


# -- generated articles ---------------------------------------------------------------------------

# Word lists as split strings: shorter to read than 90 quoted literals.
_CITIES = (  # noqa: SIM905
    "成都市 绵阳市 德阳市 宜宾市 泸州市 南充市 乐山市 达州市 西宁市 海东市 格尔木市 乌鲁木齐市 "
    "克拉玛依市 哈密市 昌吉市 石河子市 重庆市永川区 重庆市荣昌区 武汉市 襄阳市 宜昌市 长沙市 株洲市 "
    "湘潭市 郑州市 洛阳市 新乡市 合肥市 芜湖市 蚌埠市 南京市 苏州市 无锡市 常州市 杭州市 宁波市 "
    "嘉兴市 福州市 厦门市 泉州市 南昌市 赣州市 济南市 青岛市 烟台市 潍坊市 太原市 长治市 西安市 宝鸡市 "
    "兰州市 天水市 银川市 石嘴山市 呼和浩特市 包头市 昆明市 玉溪市 贵阳市 遵义市 南宁市"
).split()
_TOPICS = (  # noqa: SIM905
    "科技成果转化 高新技术企业培育 科技型中小企业评价 创新型产业集群建设 科技企业孵化器建设 "
    "技术合同登记 科技特派员 农业科技园区建设 重点实验室建设 新型研发机构建设 科技金融服务 "
    "知识产权运营 科普工作 科研诚信建设 科技人才引进 产学研合作 技术创新中心建设 "
    "可持续发展实验区建设 数字经济创新 新能源技术攻关 新材料产业创新 生物医药研发 智能制造 "
    "节水农业技术推广 区域科技合作 科技服务业发展 众创空间建设 大学科技园建设 国际科技合作 "
    "科技计划项目管理 科技统计"
).split()
_FORMS = (
    "{city}召开{year}年{topic}工作推进会",
    "{city}科技局部署{year}年{topic}工作",
    "{city}举办{year}年{topic}培训班",
    "{city}开展{year}年{topic}专项调研",
    "{city}科技局关于做好{year}年{topic}工作的通知",
    "{year}年{city}{topic}工作座谈会召开",
)
_EPOCH = date(2015, 1, 1)


@cache
def _sentence_pool() -> tuple[str, ...]:
    """Every full sentence of the base articles' bodies (no salutations, headings or signatures).

    Only articles.toml: adding policy documents leaves the generated articles as they were."""
    pool: list[str] = []
    for article in _BASE:
        for paragraph in article.paragraphs:
            for sentence in re.findall(r"[^。]+。", paragraph):
                if len(sentence) >= 24 and not re.match(r"[一二三四五六七八九十]+、", sentence):
                    pool.append(sentence)
    return tuple(pool)


def _vary_numbers(sentence: str, rng: random.Random) -> str:
    """Change the counts and amounts of a sentence (not dates), so reused sentences differ."""

    def swap(match: re.Match[str]) -> str:
        number, unit = match.group(1), match.group(2)
        if unit in "年月日时":
            return match.group(0)
        low = 10 ** (len(number) - 1) if len(number) > 1 else 1
        return f"{rng.randint(low, 10 ** len(number) - 1)}{unit}"

    return re.sub(r"(\d+)(\D|$)", swap, sentence)


def generated_date(n: int) -> date:
    """The date of generated article ``n``, without building it (sorting 20,000 of them is cheap)."""
    return _EPOCH + timedelta(days=(n * 7919) % 3285)


@lru_cache(maxsize=4096)
def generated_article(n: int) -> Article:
    """Filler article number ``n`` (``n >= 0``): deterministic, distinct id, title and text.

    Each is an opening sentence of its own plus three paragraphs of sentences drawn from the base
    articles with their numbers varied, so two generated articles share little text and are not
    near duplicates of each other. Every fourth one is a notice ending with agency and date.
    """
    rng = random.Random(n)
    city = _CITIES[n % len(_CITIES)]
    topic = _TOPICS[(n // len(_CITIES)) % len(_TOPICS)]
    rest = n // (len(_CITIES) * len(_TOPICS))
    form = _FORMS[rest % len(_FORMS)]
    day = generated_date(n)
    year = day.year
    title = form.format(city=city, topic=topic, year=year)
    if rest >= len(_FORMS):  # past 11,346 articles the combinations repeat: number the rounds
        title += f"（第{rest // len(_FORMS) + 1}期）"
    agency = f"{city}科学技术局"
    pool = _sentence_pool()
    opening = (
        f"{day.month}月{day.day}日，{agency}围绕{topic}工作召开专题会议，"
        f"研究部署{year}年{topic}重点任务。{_vary_numbers(rng.choice(pool), rng)}"
    )
    paragraphs = [opening]
    for _ in range(3):
        sentences = [_vary_numbers(s, rng) for s in rng.sample(pool, rng.randint(2, 3))]
        paragraphs.append("".join(sentences))
    if n % 4 == 3:
        paragraphs += [agency, f"{day.year}年{day.month}月{day.day}日"]
    return Article(
        id=f"{GENERATED_PREFIX}{n:06d}",
        title=title,
        date=day.isoformat(),
        paragraphs=tuple(paragraphs),
        agency=agency,
        source="generated from the sentences of the base articles",
    )
