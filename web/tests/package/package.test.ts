import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const web = join(import.meta.dirname, "..", "..");
const folder = mkdtempSync(join(tmpdir(), "tickwire-client-"));

afterAll(() => rmSync(folder, { recursive: true, force: true }));

describe("the npm package tickwire-client (web/client)", () => {
  it("builds to ES modules with types that Node imports as they would be published", async () => {
    // 1. The package as `npm publish web/client` would take it, after `npm run build:client`.
    cpSync(join(web, "client", "package.json"), join(folder, "package.json"));
    cpSync(join(web, "client", "LICENSE"), join(folder, "LICENSE"));
    execFileSync(join(web, "node_modules", ".bin", "tsc"), ["-p", join(web, "client", "tsconfig.json"), "--outDir", join(folder, "dist")]);
    // 2. Not private, and what it would publish: the modules, their types, the licence.
    const manifest = JSON.parse(readFileSync(join(folder, "package.json"), "utf8")) as Record<string, unknown>;
    expect(manifest.private).toBeUndefined();
    expect(manifest.dependencies).toBeUndefined(); // framework-free: nothing to pull in
    const [packed] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd: folder, encoding: "utf8" })) as {
      files: { path: string }[];
    }[];
    const files = packed!.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(["LICENSE", "package.json", "dist/index.js", "dist/index.d.ts", "dist/client.d.ts"]));
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
    // 3. Node resolves every relative import (the .ts paths were rewritten to .js).
    const api = (await import(pathToFileURL(join(folder, "dist", "index.js")).href)) as Record<string, unknown>;
    expect(typeof api.TickwireClient).toBe("function");
    expect(api.DEFAULT_BACKOFF).toEqual({ baseMs: 250, capMs: 4000, maxAttempts: 20 });
    expect(readFileSync(join(folder, "dist", "index.d.ts"), "utf8")).toContain("TickwireClient");
  }, 60_000);
});
