// Completes package-lock.json with the other platforms' optional native packages of rollup.
//
// Why: the npm registry mirror of this build environment does not serve every platform build of
// @rollup/rollup-* (404), so `npm install` leaves them out of the lock, and `npm ci` then refuses
// the lock as "not in sync". Listing them as optional, platform-bound entries satisfies `npm ci`;
// on this platform they are skipped without being fetched. Run after any `npm install`:
//     node scripts/complete-lock.mjs
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf-8"));
const packages = lock.packages;
const OS = ["android", "darwin", "freebsd", "linux", "openbsd", "openharmony", "win32"];
const CPU = ["arm64", "arm", "x64", "ia32", "loong64", "ppc64", "riscv64", "s390x"];

function platformOf(name) {
  const parts = name.split("/").pop().split("-");
  const os = parts.find((p) => OS.includes(p));
  const cpu = parts.find((p) => CPU.includes(p));
  if (!os || !cpu) return null;
  const entry = { os: [os], cpu: [cpu] };
  if (os === "linux") {
    if (parts.some((p) => p.startsWith("musl"))) entry.libc = ["musl"];
    else if (parts.some((p) => p.startsWith("gnu"))) entry.libc = ["glibc"];
  }
  return entry;
}

let added = 0;
for (const [where, pkg] of Object.entries(packages)) {
  for (const [dep, version] of Object.entries(pkg.optionalDependencies ?? {})) {
    if (!dep.startsWith("@rollup/rollup-")) continue;
    const key = `node_modules/${dep}`;
    if (packages[key]) continue;
    const platform = platformOf(dep);
    if (!platform) continue;
    packages[key] = { version, ...(pkg.dev || where === "" ? { dev: true } : {}), license: "MIT", optional: true, ...platform };
    added++;
  }
}
const sorted = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))));
lock.packages = sorted;
writeFileSync(path, JSON.stringify(lock, null, 2) + "\n");
console.log(`complete-lock: added ${added} platform entries`);
