// Validates AsyncAPI documents with the AsyncAPI parser (version pinned in package-lock.json): `make asyncapi-check`.
//   node tools/asyncapi-check/validate.mjs docs/asyncapi.yaml [more.yaml ...]
// Prints one line per diagnostic (severity, code, path, message). Exit 1 when any diagnostic is reported (errors,
// warnings, hints alike) but those ACCEPTED below, 2 on bad usage.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const SEVERITY = Object.fromEntries(Object.entries(DiagnosticSeverity).map(([name, value]) => [value, name]));
// The project documents AsyncAPI 3.0.0 on purpose: the parser's note that 3.1.0 exists is printed, not a failure.
const ACCEPTED = new Set(["asyncapi-latest-version"]);
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate.mjs DOCUMENT.yaml [...]");
  process.exit(2);
}
const { version } = createRequire(import.meta.url)("@asyncapi/parser/package.json");
const parser = new Parser();
let failed = false;
for (const file of files) {
  const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"), { source: file });
  const faults = diagnostics.filter((d) => !ACCEPTED.has(d.code));
  for (const d of diagnostics) {
    const where = d.path && d.path.length ? d.path.join(".") : "(document)";
    const note = ACCEPTED.has(d.code) ? " (accepted)" : "";
    console.log(`${file}: ${SEVERITY[d.severity] ?? d.severity} ${d.code}: ${where}: ${d.message}${note}`);
  }
  if (document === undefined || faults.length > 0) {
    failed = true;
    console.log(`${file}: invalid (${faults.length} diagnostics, @asyncapi/parser ${version})`);
  } else {
    const count = (collection) => collection.all().length;
    console.log(
      `${file}: valid AsyncAPI ${document.version()} (@asyncapi/parser ${version}): ` +
        `${count(document.channels())} channels, ${count(document.operations())} operations, ` +
        `${count(document.messages())} messages`,
    );
  }
}
process.exit(failed ? 1 : 0);
