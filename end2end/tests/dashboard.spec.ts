import { expect, Page, test } from "@playwright/test";
import { freePort, Server, tempDatabase } from "./server";

/** Counts the canvas pixels that are not background white: a drawn chart has thousands. */
async function inkedPixels(page: Page, signal: string): Promise<number> {
  return page.locator(`article.chart[data-signal="${signal}"] canvas`).evaluate((canvas: HTMLCanvasElement) => {
    const context = canvas.getContext("2d")!;
    const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
    let inked = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] < 250 || data[i + 1] < 250 || data[i + 2] < 250) inked++;
    }
    return inked;
  });
}

function canvasImage(page: Page, signal: string): Promise<string> {
  return page
    .locator(`article.chart[data-signal="${signal}"] canvas`)
    .evaluate((canvas: HTMLCanvasElement) => canvas.toDataURL());
}

/** Collects console errors and uncaught exceptions, so a hydration failure fails the test. */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(e.message));
  return errors;
}

async function openDashboard(page: Page, server: Server): Promise<void> {
  await page.goto(server.url);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("#connection")).toHaveAttribute("data-state", "live");
}

let server: Server;

test.afterEach(async () => {
  await server?.stop("SIGKILL");
});

test("the page hydrates and draws a posted signal on its canvas", async ({ page }) => {
  server = await Server.start(tempDatabase(), await freePort());
  const now = Date.now();
  await server.post([
    { timestamp: now - 3000, signals: { "e2e.temp": 20 } },
    { timestamp: now - 2000, signals: { "e2e.temp": 25 } },
    { timestamp: now - 1000, signals: { "e2e.temp": 22 } },
  ]);
  const errors = watchErrors(page);
  await openDashboard(page, server);

  const chart = page.locator('article.chart[data-signal="e2e.temp"]');
  await expect(chart).toHaveAttribute("data-points", "3");
  await expect(page.locator(".signal-list li", { hasText: "e2e.temp" })).toContainText("22");
  await expect.poll(() => inkedPixels(page, "e2e.temp")).toBeGreaterThan(500);
  expect(errors).toEqual([]);
});

test("a posted point changes the canvas within 2 s, and a new signal gets a chart", async ({ page }) => {
  server = await Server.start(tempDatabase(), await freePort());
  const now = Date.now();
  await server.post({ timestamp: now - 2000, signals: { "e2e.flow": 1 } });
  const errors = watchErrors(page);
  await openDashboard(page, server);
  await expect.poll(() => inkedPixels(page, "e2e.flow")).toBeGreaterThan(500);
  const before = await canvasImage(page, "e2e.flow");

  await server.post({ timestamp: now - 1000, signals: { "e2e.flow": 9 } });
  await expect.poll(() => canvasImage(page, "e2e.flow"), { timeout: 2000 }).not.toBe(before);
  await expect(page.locator('article.chart[data-signal="e2e.flow"]')).toHaveAttribute("data-points", "2");

  await server.post({ signals: { "e2e.brand_new": 5 } });
  const fresh = page.locator('article.chart[data-signal="e2e.brand_new"]');
  await expect(fresh).toBeVisible({ timeout: 2000 });
  await expect.poll(() => inkedPixels(page, "e2e.brand_new"), { timeout: 2000 }).toBeGreaterThan(500);
  expect(errors).toEqual([]);
});

test("after the server is killed and restarted, the dashboard reconnects without a gap", async ({ page }) => {
  const database = tempDatabase();
  const port = await freePort();
  server = await Server.start(database, port);
  const start = Date.now() - 60_000;
  const point = (i: number) => ({ timestamp: start + i * 1000, signals: { "e2e.gap": i } });

  await server.post([point(1), point(2), point(3)]);
  await openDashboard(page, server);
  const chart = page.locator('article.chart[data-signal="e2e.gap"]');
  await expect(chart).toHaveAttribute("data-points", "3");

  await server.stop("SIGKILL");
  await expect(page.locator("#connection")).toHaveAttribute("data-state", "reconnecting");

  // While the dashboard's server is down, points 4–6 are committed through another server on the same
  // database: exactly what a dashboard misses during an outage.
  const other = await Server.start(database, await freePort());
  await other.post([point(4), point(5), point(6)]);
  await other.stop("SIGTERM");

  server = await Server.start(database, port);
  await expect(page.locator("#connection")).toHaveAttribute("data-state", "live", { timeout: 15_000 });
  await expect(chart).toHaveAttribute("data-points", "6");
  await expect(chart).toHaveAttribute("data-last-ts", String(point(6).timestamp));

  await server.post(point(7));
  await expect(chart).toHaveAttribute("data-points", "7");
});
