// The published package: what `npm pack` puts in the tarball (the built
// library, its types, README, CHANGELOG, LICENSE; no sources, tests, fakes
// or demo), and that the tarball installs into an empty project, imports
// in Node and type-checks from TypeScript. `npm test` builds dist/ first;
// the pack runs with --ignore-scripts so that its prepack build does not
// rewrite dist/ under the other test files running beside this one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const quiet = { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" };

test("npm pack: the built library, its types and the package's documents; no sources, tests, fakes or demo", () => {
  const out = execFileSync(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root, ...quiet });
  const [info] = JSON.parse(out);
  const files = info.files.map((f) => f.path).sort();
  const built = readdirSync(join(root, "dist")).filter((f) => f.endsWith(".js") || f.endsWith(".d.ts"));
  assert.ok(built.length >= 20, "dist/ is built");
  for (const f of built) assert.ok(files.includes("dist/" + f), `dist/${f} is packed`);
  for (const f of ["package.json", "README.md", "CHANGELOG.md", "LICENSE"]) assert.ok(files.includes(f), `${f} is packed`);
  const stray = files.filter((f) => !f.startsWith("dist/") && !["package.json", "README.md", "CHANGELOG.md", "LICENSE"].includes(f));
  assert.deepEqual(stray, [], "nothing else: no src/, test/, fakes, demo/, integration/, scripts/");
  assert.ok(!files.some((f) => /test|fake/i.test(f)), "no test or fake in the tarball");
  assert.equal(info.name, "@courierhq/client");
  assert.equal(info.version, pkg.version);
  assert.equal(pkg.private, undefined, "publishable");
  assert.ok(pkg.license && pkg.types && pkg.exports["."].types && pkg.exports["."].import);
  assert.match(readFileSync(join(root, "CHANGELOG.md"), "utf8"), new RegExp("## " + pkg.version.replace(/\./g, "\\.")), "the CHANGELOG has this version");
  assert.deepEqual(Object.keys(pkg.dependencies ?? {}), [], "no runtime dependencies");
  for (const [name, range] of Object.entries(pkg.devDependencies)) assert.match(range, /^\d+\.\d+\.\d+$/, `${name} pinned exactly`);
});

test("the tarball installs into an empty project, imports in Node and type-checks in TypeScript", () => {
  const dir = mkdtempSync(join(tmpdir(), "courier-pack-"));
  try {
    const out = execFileSync(npm, ["pack", "--json", "--ignore-scripts", "--pack-destination", dir], { cwd: root, ...quiet });
    const tarball = join(dir, JSON.parse(out)[0].filename);
    const app = join(dir, "app");
    execFileSync("mkdir", ["-p", app]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true, type: "module" }));
    // No runtime dependencies: the install needs no registry.
    execFileSync(npm, ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], { cwd: app, ...quiet });

    writeFileSync(
      join(app, "main.mjs"),
      `import { Courier, conversationId, CourierError, TYPING_THROTTLE_MS } from "@courierhq/client";
       import pkg from "@courierhq/client/package.json" with { type: "json" };
       const c = new Courier({ token: "t", gatewayUrl: "http://127.0.0.1:1" });
       console.log(JSON.stringify({ version: pkg.version, id: await conversationId(["alice", "bob"]), typing: typeof c.typing, history: typeof c.history, throttle: TYPING_THROTTLE_MS, err: new CourierError("x", "y") instanceof Error }));`,
    );
    const got = JSON.parse(execFileSync(process.execPath, ["main.mjs"], { cwd: app, ...quiet }));
    assert.deepEqual(got, { version: pkg.version, id: "d.1cb15457d1ddab60e205c0fe3ca2f65d", typing: "function", history: "function", throttle: 2500, err: true });

    // The declarations resolve through `exports` for a NodeNext project.
    writeFileSync(
      join(app, "main.ts"),
      `import { Courier, type HistoryPage, type TypingEvent } from "@courierhq/client";
       const c = new Courier({ token: () => "t" });
       c.on("typing", (e: TypingEvent) => { const who: string = e.user; void who; });
       const p: Promise<HistoryPage> = c.history("d.x", { before: "c" });
       void p;
       // @ts-expect-error: markRead needs a cursor
       void c.markRead("d.x");`,
    );
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, lib: ["ES2022", "DOM"], types: [] }, files: ["main.ts"] }),
    );
    execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], { cwd: app, ...quiet });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
