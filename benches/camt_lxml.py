#!/usr/bin/env python3
"""The lxml baseline of benches/camt.sh: a camt.053.001.08 file streamed with
lxml.etree.iterparse and turned into Python values per entry, the fields
camt-bench's `parse` extracts, with the standard memory-bounded idiom
(each entry cleared once read and earlier siblings deleted).

Prints one JSON line with the same fields as `camt-bench parse`
(MB = 2**20 bytes; peak RSS from getrusage, in KiB).

Usage: camt_lxml.py --in FILE
"""

import argparse
import datetime
import json
import os
import resource
import sys
import time

from lxml import etree

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
MB = 1024.0 * 1024.0
# Minor-unit exponent by currency (ISO 4217); the generator writes CNY, USD, EUR.
EXPONENTS = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3, "OMR": 3}


def q(path):
    """'Amt' -> '{ns}Amt', 'BookgDt/Dt' -> '{ns}BookgDt/{ns}Dt'."""
    return "/".join("{%s}%s" % (NS, part) for part in path.split("/"))


AMT = q("Amt")
CDT_DBT = q("CdtDbtInd")
STS = q("Sts/Cd")
BOOKG = q("BookgDt/Dt")
VAL = q("ValDt/Dt")
ACCT_SVCR_REF = q("AcctSvcrRef")
TX = q("NtryDtls/TxDtls")
E2E = q("Refs/EndToEndId")
DBTR_NM = q("RltdPties/Dbtr/Pty/Nm")
CDTR_NM = q("RltdPties/Cdtr/Pty/Nm")
USTRD = q("RmtInf/Ustrd")


def minor_units(text, currency):
    """Exact decimal text to integer minor units (no floats)."""
    exponent = EXPONENTS.get(currency, 2)
    whole, _, fraction = text.strip().partition(".")
    if len(fraction) > exponent:
        raise ValueError("too many decimals: %r" % text)
    return int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in", dest="path", required=True)
    args = parser.parse_args()

    started = time.perf_counter()
    size = os.path.getsize(args.path)
    entries = 0
    pending = 0
    statements = 0
    signed_sum = 0
    date_sum = 0
    text_chars = 0
    context = etree.iterparse(
        args.path, events=("end",), tag=(q("Ntry"), q("Stmt")), huge_tree=False
    )
    for _, elem in context:
        if elem.tag == q("Stmt"):
            statements += 1
        else:
            status = (elem.findtext(STS) or "").strip()
            if status in ("BOOK", "PDNG"):
                amt = elem.find(AMT)
                amount = minor_units(amt.text, amt.get("Ccy"))
                if amount <= 0:
                    raise ValueError("entry amount is not positive")
                credit = elem.findtext(CDT_DBT).strip() == "CRDT"
                booking = datetime.date.fromisoformat(elem.findtext(BOOKG).strip())
                value_text = elem.findtext(VAL)
                value = (
                    datetime.date.fromisoformat(value_text.strip())
                    if value_text is not None
                    else booking
                )
                reference = elem.findtext(ACCT_SVCR_REF)
                tx = elem.find(TX)
                end_to_end = counterparty = remittance = None
                if tx is not None:
                    end_to_end = tx.findtext(E2E)
                    counterparty = tx.findtext(DBTR_NM if credit else CDTR_NM)
                    lines = [u.text for u in tx.iterfind(USTRD) if u.text]
                    remittance = " ".join(lines) if lines else None
                entries += 1
                pending += status == "PDNG"
                signed_sum += amount if credit else -amount
                date_sum += booking.toordinal() + value.toordinal()
                for text in (counterparty, remittance, reference, end_to_end):
                    if text is not None:
                        text_chars += len(text)
        # The memory-bounded idiom: forget this element and every earlier
        # sibling (headers, balances, entries already read).
        elem.clear(keep_tail=True)
        while elem.getprevious() is not None:
            del elem.getparent()[0]
    del context
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "mode": "lxml",
                "bytes": size,
                "seconds": round(seconds, 3),
                "mb_per_s": round(size / MB / seconds, 1),
                "entries": entries,
                "pending": pending,
                "statements": statements,
                "signed_sum_minor": signed_sum,
                "date_sum": date_sum,
                "text_chars": text_chars,
                "peak_rss_kib": peak_kib,
                "lxml": ".".join(map(str, etree.LXML_VERSION)),
                "libxml2": ".".join(map(str, etree.LIBXML_VERSION)),
            },
            separators=(",", ":"),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
