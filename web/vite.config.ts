/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Built into dist/, which the API serves at /app (modomo/api/web.py). In development,
// `npm run dev` serves it on :5173 against the API named by VITE_API_URL (CORS allows it).
export default defineConfig({
  base: "/app/",
  plugins: [react()],
  build: { outDir: "dist", sourcemap: false },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
});
