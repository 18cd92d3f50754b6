/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// No React plugin: esbuild compiles TSX with the automatic runtime itself.
export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
    sourcemap: false,
    rollupOptions: {
      // React Flow marks its modules "use client" (for server components); meaningless in a bundle
      onwarn(warning, warn) {
        if (warning.code === "MODULE_LEVEL_DIRECTIVE") return;
        warn(warning);
      },
    },
  },
  server: {
    // `npm run dev` against a running `nodegraph serve` on the default port
    proxy: { "/v1": { target: "http://127.0.0.1:8188", ws: true } },
  },
  test: {
    include: ["tests/**/*.test.ts"],
    environment: "node",
  },
});
