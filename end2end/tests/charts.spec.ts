// Honest charts: missing data is drawn as missing, a silent signal is marked stale, and a phone
// gets the charts first.
import { expect, Page, test } from "@playwright/test";
import { freePort, Server, tempDatabase } from "./server";

let server: Server;

test.afterEach(async () => {
  await server?.stop("SIGKILL");
});

/** One sample a second of `signal` over `from..=to` (ms). */
function everySecond(signal: string, from: number, to: number): object[] {
  const samples = [];
  for (let t = from; t <= to; t += 1000) samples.push({ timestamp: t, signals: { [signal]: 50 + 20 * Math.sin(t / 7000) } });
  return samples;
}

/**
 * The canvas columns holding a pixel of the first line colour (rgb(37, 99, 235)), as runs of
 * columns without one: the widest such run inside the line's extent, in pixels.
 */
function widestHole(page: Page, signal: string): Promise<{ hole: number; width: number }> {
  return page.locator(`article.chart[data-signal="${signal}"] canvas`).evaluate((canvas: HTMLCanvasElement) => {
    const { data, width, height } = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height);
    const inked: boolean[] = [];
    for (let x = 0; x < width; x++) {
      inked[x] = false;
      for (let y = 0; y < height && !inked[x]; y++) {
        const i = (y * width + x) * 4;
        inked[x] = Math.abs(data[i] - 37) < 40 && Math.abs(data[i + 1] - 99) < 40 && data[i + 2] > 190;
      }
    }
    const first = inked.indexOf(true);
    const last = inked.lastIndexOf(true);
    let hole = 0;
    let run = 0;
    for (let x = first; x <= last; x++) {
      run = inked[x] ? 0 : run + 1;
      hole = Math.max(hole, run);
    }
    return { hole, width };
  });
}

test("a silence is drawn as a gap, on the canvas and in the server's picture", async ({ page }) => {
  server = await Server.start(tempDatabase(), await freePort());
  const now = Date.now();
  await server.post([
    ...everySecond("e2e.gap", now - 290_000, now - 200_000),
    ...everySecond("e2e.gap", now - 80_000, now - 2_000),
    ...everySecond("e2e.steady", now - 290_000, now - 2_000),
    ...everySecond("e2e.resumed", now - 290_000, now - 200_000),
  ]);
  const url = `${server.url}/?range=5m&signals=e2e.gap,e2e.steady,e2e.resumed`;

  // The server's picture: the gap's line in two pieces, the steady one in one.
  const html = await (await page.request.get(url)).text();
  const lines = (signal: string) => {
    const article = html
      .split("<article")
      .find((a) => a.split(">")[0].includes(`data-signal="${signal}"`))!
      .split("</article>")[0];
    return article.split("<polyline").filter((l) => l.toUpperCase().includes("#2563EB")).length;
  };
  expect(lines("e2e.gap")).toBe(2);
  expect(lines("e2e.steady")).toBe(1);

  // The canvas: a hole of about the silence's width (120 s of 300), none in the steady line.
  await page.goto(url);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  const gap = page.locator('article.chart[data-signal="e2e.gap"]');
  await expect(gap).toHaveAttribute("data-gaps", "1");
  await expect(page.locator('article.chart[data-signal="e2e.steady"]')).toHaveAttribute("data-gaps", "0");
  const { hole, width } = await widestHole(page, "e2e.gap");
  expect(hole).toBeGreaterThan(width * 0.25);
  expect((await widestHole(page, "e2e.steady")).hole).toBeLessThan(width * 0.05);

  // Live points after a silence start a line of their own.
  const resumed = page.locator('article.chart[data-signal="e2e.resumed"]');
  await expect(resumed).toHaveAttribute("data-gaps", "0");
  const later = Date.now();
  await server.post(everySecond("e2e.resumed", later - 2_000, later));
  await expect(resumed).toHaveAttribute("data-points", "94");
  await expect(resumed).toHaveAttribute("data-gaps", "1");
});

test("a signal silent for several of its usual steps is marked stale, on its chart and in the list", async ({ page }) => {
  server = await Server.start(tempDatabase(), await freePort());
  const now = Date.now();
  await server.post([...everySecond("e2e.quiet", now - 60_000, now - 20_000), ...everySecond("e2e.busy", now - 60_000, now)]);
  await page.goto(`${server.url}/?range=5m`);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  const quiet = page.locator('article.chart[data-signal="e2e.quiet"]');
  const busy = page.locator('article.chart[data-signal="e2e.busy"]');
  await expect(quiet.locator(".badge")).toHaveAttribute("data-state", "stale");
  await expect(quiet.locator(".badge")).toContainText("stale since");
  await expect(quiet).toHaveAttribute("data-stale-since", String(now - 20_000));
  await expect(page.locator('.signal-list li[data-signal="e2e.quiet"]')).toHaveClass(/stale/);

  // The busy one is live while it reports, and turns stale a few seconds after it stops.
  await expect(busy.locator(".badge")).toHaveAttribute("data-state", "live");
  await expect(page.locator('.signal-list li[data-signal="e2e.busy"]')).not.toHaveClass(/stale/);
  for (let i = 0; i < 4; i++) {
    await server.post({ timestamp: Date.now(), signals: { "e2e.busy": i } });
    await page.waitForTimeout(1000);
    await expect(busy.locator(".badge")).toHaveAttribute("data-state", "live");
  }
  await expect(busy.locator(".badge")).toHaveAttribute("data-state", "stale", { timeout: 10_000 });
  await expect(page.locator('.signal-list li[data-signal="e2e.busy"]')).toHaveClass(/stale/);
});

test("on a phone the charts come first, the signal list folds away, and nothing overflows", async ({ page }) => {
  server = await Server.start(tempDatabase(), await freePort());
  const now = Date.now();
  await server.post(everySecond("e2e.phone", now - 60_000, now));
  await page.setViewportSize({ width: 375, height: 740 });
  await page.goto(server.url);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  const chart = page.locator('article.chart[data-signal="e2e.phone"]');
  const list = page.locator(".signal-list");
  expect((await chart.boundingBox())!.y).toBeLessThan((await list.boundingBox())!.y);
  expect((await chart.boundingBox())!.y).toBeLessThan(740);
  await expect(list.locator(".filter")).toBeHidden();
  await list.locator("h2 label").click();
  await expect(list.locator(".filter")).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  for (const field of await page.locator(".toolbar input").all()) {
    const box = (await field.boundingBox())!;
    expect(box.x + box.width).toBeLessThanOrEqual(375);
  }
});
