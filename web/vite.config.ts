import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// base './' keeps asset URLs relative, so the gateway can serve dist/ at '/' or behind a path prefix.
export default defineConfig({
  base: "./",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
  test: {
    include: ["tests/**/*.test.{ts,tsx}"],
    environment: "node",
    watch: false,
  },
});
