// The dashboard watches itself and its server: the page-health panel, the page's figures sent back
// as signalboard.browser.* signals, and the server's own signalboard.* signals charted like any.
import { expect, test } from "@playwright/test";
import { freePort, Server, tempDatabase } from "./server";

let server: Server;

test.afterEach(async () => {
  await server?.stop("SIGKILL");
});

test("the page-health panel measures the page, and both page and server send their own signals", async ({ page }) => {
  const database = tempDatabase();
  const port = await freePort();
  const settings = { "self-signals-secs": 1, "browser-signals": true };
  server = await Server.start(database, port, settings);
  await server.post({ timestamp: Date.now() - 1000, signals: { "e2e.a": 1 } });
  await page.goto(`${server.url}/?range=5m`);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");

  const figure = (key: string) => page.locator(`.page-health dd[data-figure="${key}"]`);
  await page.locator(".page-health summary").click();
  await expect(figure("frames_per_sec")).toHaveText(/^[\d.]+ fps$/);
  await expect(figure("wasm_memory_bytes")).toHaveText(/^[\d.]+ MiB$/);
  await expect(figure("js_heap_bytes")).toHaveText(/^[\d.]+ MiB$/);
  await expect(figure("first_paint_ms")).toHaveText(/^[\d.]+ ms$/);
  await expect(figure("redraw_ms")).toHaveText(/^[\d.]+ ms$/);
  await expect(figure("reconnects")).toHaveText("0");

  // The server's own health and the page's, as signals in the list, chartable like any other.
  const listed = (signal: string) => page.locator(`.signal-list li[data-signal="${signal}"]`);
  await expect(listed("signalboard.ingest.points_per_sec")).toHaveCount(1);
  await expect(listed("signalboard.process.rss_bytes")).toHaveCount(1);
  await expect(listed("signalboard.browser.frames_per_sec")).toHaveCount(1, { timeout: 15_000 });
  const signals = await (await page.request.get(`${server.url}/api/signals`)).json();
  const rss = signals.find((s: { signal: string }) => s.signal === "signalboard.process.rss_bytes");
  expect(rss.last_value).toBeGreaterThan(1e6);

  // A server lost and back: the page counts the reconnect.
  await server.stop("SIGKILL");
  server = await Server.start(database, port, settings);
  await expect(page.locator("#connection")).toHaveAttribute("data-state", "live", { timeout: 15_000 });
  await expect(figure("reconnects")).not.toHaveText("0");
});

test("with browser-signals off (the default) the page sends none", async ({ page }) => {
  server = await Server.start(tempDatabase(), await freePort());
  await server.post({ timestamp: Date.now() - 1000, signals: { "e2e.a": 1 } });
  await page.goto(`${server.url}/?range=5m`);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  await page.locator(".page-health summary").click();
  await expect(page.locator('.page-health dd[data-figure="frames_per_sec"]')).toHaveText(/fps$/);
  await page.waitForTimeout(2_500);
  const signals = await (await page.request.get(`${server.url}/api/signals`)).json();
  expect(signals.map((s: { signal: string }) => s.signal)).toEqual(["e2e.a"]);
});
