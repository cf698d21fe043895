// Parses each PowerShell script named on the command line with the
// tree-sitter PowerShell grammar and prints every syntax error (ERROR or
// MISSING node) as file:line:column. Exit status 1 when any is found.
//
//   npm ci && node parse.mjs ../install.ps1
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Parser, Language } from "web-tree-sitter";

const require = createRequire(import.meta.url);
await Parser.init();
const powershell = await Language.load(require.resolve("tree-sitter-powershell/tree-sitter-powershell.wasm"));
const parser = new Parser();
parser.setLanguage(powershell);

let errors = 0;
for (const file of process.argv.slice(2)) {
  const tree = parser.parse(readFileSync(file, "utf8"));
  const walk = (node) => {
    if (node.isError || node.isMissing) {
      errors++;
      const what = node.isMissing ? `missing ${node.type}` : `syntax error near ${JSON.stringify(node.text.slice(0, 60))}`;
      console.error(`${file}:${node.startPosition.row + 1}:${node.startPosition.column + 1}: ${what}`);
      return;
    }
    for (const child of node.children) walk(child);
  };
  walk(tree.rootNode);
  console.log(`${file}: parsed, ${tree.rootNode.descendantCount} nodes`);
}
process.exit(errors > 0 ? 1 : 0);
