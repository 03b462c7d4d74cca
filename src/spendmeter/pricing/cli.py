"""`spendmeter price` (what would this call cost?) and `spendmeter prices` (what do we know?)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from spendmeter.call import Cost, Unpriced, Usage
from spendmeter.errors import ConfigError
from spendmeter.pricing import lookup
from spendmeter.pricing.calls import with_tools
from spendmeter.pricing.engine import PriceBook, PriceVector, load_pricebook

TOOL_FLAGS = (("web_search", "--web-search"), ("web_fetch", "--web-fetch"), ("file_search", "--file-search"),
              ("code_execution", "--code-execution"))
_BEDROCK_ID = re.compile(r"^(?:arn:aws:bedrock:|(?:(?:us|eu|apac|au|jp|ca|us-gov|global)\.)?anthropic\.)")


# Model-name prefixes that name the lab selling the model first-hand (checked before anything else). Open-weight
# families (gpt-oss, llama, qwen, ...) have no entry: many hosts sell them, so they need --provider.
_MAKERS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("gpt-oss",), ""),
    (("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding", "davinci", "babbage", "dall-e", "whisper", "tts-",
      "omni-moderation", "computer-use"), "openai"),
    (("deepseek-",), "deepseek"),
    (("grok-",), "x_ai"),
    (("mistral-", "codestral", "magistral", "devstral", "pixtral", "ministral", "open-mistral"), "mistral_ai"),
    (("gemini-",), "gcp.gemini"),
    (("kimi-", "moonshot-"), "moonshotai"),
    (("glm-",), "zai"),
    (("sonar",), "perplexity"),
    (("command",), "cohere"),
)


class AmbiguousModel(ValueError):
    """Several providers sell a model by this name at different prices: the user must say which."""


def infer_provider(model: str, book: PriceBook) -> str:
    """The provider to price `model` under when the user did not say (documented in docs/pricing.md).

    Raises `AmbiguousModel` when several providers sell it by that name and none is its maker.
    """
    name = model.strip().lower()
    if _BEDROCK_ID.match(name):
        return "aws.bedrock"
    if "claude" in name:
        return "gcp.vertex_ai" if "@" in name else "anthropic"
    maker = next((p for prefixes, p in _MAKERS if name.startswith(prefixes)), None)
    if maker and not isinstance(book.resolve(maker, model), Unpriced):
        return maker
    sellers = lookup.sellers(book, model)
    if len(sellers) == 1:
        return sellers[0]
    if len(sellers) > 1:
        raise AmbiguousModel(f"{model!r} is sold by several providers at different prices "
                             f"({', '.join(sellers)}): say which with --provider")
    for provider in ("openai", "anthropic"):  # the user's own entries without a provider, for one
        if not isinstance(book.resolve(provider, model), Unpriced):
            return provider
    return "openai"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "price", help="price one call from token counts",
        description="Price one call. Token classes are disjoint: --input excludes cache reads and writes; "
                    "--reasoning is part of --output (shown, never added twice).")
    p.add_argument("model")
    p.add_argument("--provider", help="openai, anthropic, azure.ai.openai, aws.bedrock, gcp.vertex_ai, deepseek, "
                                      "groq, ... (default: inferred from the model name where unambiguous)")
    p.add_argument("--input", type=_count, required=True, metavar="N", help="uncached input tokens")
    p.add_argument("--cache-read", type=_count, default=0, metavar="N")
    p.add_argument("--cache-write", type=_count, default=0, metavar="N", help="5-minute cache writes")
    p.add_argument("--cache-write-1h", type=_count, default=0, metavar="N", help="1-hour cache writes")
    p.add_argument("--output", type=_count, default=0, metavar="N", help="output tokens, reasoning included")
    p.add_argument("--reasoning", type=_count, default=0, metavar="N", help="part of --output")
    for tool, flag in TOOL_FLAGS:
        p.add_argument(flag, type=_count, default=0, metavar="N", dest=tool,
                       help=f"billed {tool.replace('_', ' ')} tool uses (priced per use)")
    p.add_argument("--tier", choices=("priority", "flex"), help="service tier the response reported")
    p.add_argument("--batch", action="store_true", help="a Batch API request")
    p.add_argument("--at", type=_day, metavar="YYYY-MM-DD", help="price as on this UTC date (default: today)")
    p.add_argument("--prices", metavar="FILE", help="user prices file (default: $SPENDMETER_PRICES)")
    p.add_argument("--json", action="store_true", help="one JSON object; USD amounts are decimal strings")
    p.set_defaults(func=price_command)

    q = subparsers.add_parser("prices", help="list known models and their USD per 1M token rates")
    q.add_argument("pattern", nargs="?", help="glob (gpt-5*) or substring of a model name")
    q.add_argument("--provider", help="only this provider's models (default: openai and anthropic)")
    q.add_argument("--prices", metavar="FILE", help="user prices file (default: $SPENDMETER_PRICES)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=prices_command)


def price_command(args: argparse.Namespace) -> int:
    if args.reasoning > args.output:
        print(f"spendmeter price: --reasoning ({args.reasoning}) is part of --output and cannot exceed it "
              f"({args.output})", file=sys.stderr)
        return 2
    book = _book(args.prices)
    if book is None:
        return 2
    if args.provider and not _known(args.provider, book):
        return 2
    try:
        provider = args.provider or infer_provider(args.model, book)
    except AmbiguousModel as exc:
        print(f"spendmeter price: {exc}", file=sys.stderr)
        return 2
    usage = Usage(input=args.input, cache_read=args.cache_read, cache_write_5m=args.cache_write,
                  cache_write_1h=args.cache_write_1h, output=args.output, reasoning=args.reasoning,
                  source="reported")
    when = args.at or datetime.now(UTC)
    # resolve() rather than price(): the CLI reports an unknown model itself, without the library's warning.
    vec = book.resolve(provider, args.model, tier=args.tier, batch=args.batch, when=when)
    result = vec.cost(usage) if isinstance(vec, PriceVector) else vec
    if not isinstance(result, Cost):
        print(f"spendmeter price: unknown price: {result.reason}", file=sys.stderr)
        return 2
    uses = tuple((tool, n) for tool, _flag in TOOL_FLAGS if (n := getattr(args, tool)))
    result = with_tools(book, provider, args.model, result, uses, when)
    classes = {
        "input": (usage.input, result.input),
        "cache_read": (usage.cache_read, result.cache_read),
        "cache_write": (usage.cache_write, result.cache_write),
        "output": (usage.output, result.output),
    }
    tool_rows = {tool: (dict(uses).get(tool, 1), c) for tool, c in result.tool_costs}
    if args.json:
        print(json.dumps({
            "model": args.model, "provider": provider, "tier": args.tier or "standard", "batch": args.batch,
            "at": when.date().isoformat(), "currency": result.currency, "total_usd": _usd(result.total),
            # `tools` keys only when there are fees: the object stays as it was for token-only calls.
            "cost_usd": {**{k: _usd(c) for k, (_, c) in classes.items()},
                         **({"tools": _usd(result.tools)} if tool_rows else {})},
            **({"tools": {t: {"uses": n, "usd": _usd(c)} for t, (n, c) in tool_rows.items()}} if tool_rows else {}),
            "tokens": {"input": usage.input, "cache_read": usage.cache_read,
                       "cache_write_5m": usage.cache_write_5m, "cache_write_1h": usage.cache_write_1h,
                       "output": usage.output, "reasoning": usage.reasoning},
            "price_entry": result.price_entry, "source": result.source}, indent=2))
        return 0
    print(f"{args.model} via {provider}, {args.tier or 'standard'} tier{', batch' if args.batch else ''}, "
          f"on {when.date().isoformat()}")
    print(f"price entry  {result.price_entry}")
    print(f"source       {result.source}")
    print(f"{'class':<12} {'tokens':>10}  {'USD':>14}")
    for name, (tokens, cost) in classes.items():
        note = f"  (reasoning {usage.reasoning} included)" if name == "output" and usage.reasoning else ""
        print(f"{name:<12} {tokens:>10}  {_usd(cost):>14}{note}")
    for tool, (n, cost) in tool_rows.items():
        print(f"{tool:<12} {n:>7} x  {_usd(cost):>14}")
    print(f"{'total':<12} {usage.total:>10}  {_usd(result.total):>14}")
    return 0


def prices_command(args: argparse.Namespace) -> int:
    book = _book(args.prices)
    if book is None:
        return 2
    if args.provider and not _known(args.provider, book):
        return 2
    rows = book.models(args.provider, args.pattern)
    if args.json:
        print(json.dumps([{
            "provider": r.provider, "model": r.model, "names": list(r.names), "source": r.source,
            "long_context_above": r.long_context_above,
            "usd_per_1m": {"input": _usd(r.rates.input), "cache_read": _usd(r.rates.cache_read),
                           "cache_write": _usd(r.rates.cache_write_5m),
                           "cache_write_1h": _usd(r.rates.cache_write_1h),
                           "output": None if r.rates.output is None else _usd(r.rates.output)},
        } for r in rows], indent=2))
        return 0
    if not rows:
        print("no matching models", file=sys.stderr)
        return 1
    head = ("provider", "model", "input", "cache_read", "cache_write", "write_1h", "output", "note")
    print(f"{head[0]:<10} {head[1]:<40} {head[2]:>9} {head[3]:>10} {head[4]:>11} {head[5]:>9} {head[6]:>9}  "
          f"{head[7]}   (USD per 1M tokens)")
    for r in rows:
        out = "-" if r.rates.output is None else _usd(r.rates.output)
        note = f"tiered above {r.long_context_above}" if r.long_context_above else ""
        print(f"{r.provider:<10} {r.model:<40} {_usd(r.rates.input):>9} {_usd(r.rates.cache_read):>10} "
              f"{_usd(r.rates.cache_write_5m):>11} {_usd(r.rates.cache_write_1h):>9} {out:>9}  {note}")
    return 0


def _known(provider: str, book: PriceBook) -> bool:
    """Say so (and list what we know) when no price anywhere names this provider."""
    if lookup.knows_provider(book, provider):
        return True
    print(f"spendmeter: unknown provider {provider!r}; known: {', '.join(lookup.provider_ids(book))}", file=sys.stderr)
    return False


def _book(path: str | None) -> PriceBook | None:
    path = path or os.environ.get("SPENDMETER_PRICES") or None
    try:
        return load_pricebook(path)
    except ConfigError as exc:
        print(f"spendmeter: bad prices file: {exc}", file=sys.stderr)
        return None


def _usd(d: Decimal) -> str:
    """Full precision, no exponent, no trailing zeros: '0.00166', '1.5225', '0'."""
    return format(d.normalize(), "f") if d else "0"


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a token count, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"token counts cannot be negative, got {n}")
    return n


def _day(text: str) -> datetime:
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None
    return datetime(d.year, d.month, d.day, 12, tzinfo=UTC)
