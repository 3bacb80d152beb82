// The dashboard's interactions, each against a real server and SQLite file: the range picker, zoom by
// dragging, zoom out by double-click, pan, the shared crosshair, pause and resume, the view in the URL,
// overlay, theme, CSV export, the signal filter and figures, and a board of a thousand signals.
import { expect, Locator, Page, test } from "@playwright/test";
import * as fs from "node:fs";
import { freePort, Server, tempDatabase } from "./server";

const MINUTE = 60_000;
let server: Server;
let start: number;

/** 180 points each of e2e.a (0, 1, …, 179) and e2e.b (100 − i), every 10 s over the last 30 minutes. */
async function seed(s: Server): Promise<void> {
  start = Date.now() - 30 * MINUTE;
  const samples = [];
  for (let i = 0; i < 180; i++) {
    samples.push({ timestamp: start + i * 10_000, signals: { "e2e.a": i, "e2e.b": 100 - i } });
  }
  await s.post(samples);
}

async function open(page: Page, query = ""): Promise<void> {
  await page.goto(`${server.url}/${query}`);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("#connection")).toHaveAttribute("data-state", "live");
}

const chart = (page: Page, signal: string) => page.locator(`article.chart[data-signal="${signal}"]`);

async function bounds(page: Page): Promise<{ from: number; to: number; live: string }> {
  const app = page.locator(".app");
  return {
    from: Number(await app.getAttribute("data-from")),
    to: Number(await app.getAttribute("data-to")),
    live: (await app.getAttribute("data-live")) ?? "",
  };
}

/** Drags across `target` from one fraction of its width to another, at half its height. */
async function drag(page: Page, target: Locator, from: number, to: number, shift = false): Promise<void> {
  const box = (await target.boundingBox())!;
  const y = box.y + box.height / 2;
  if (shift) await page.keyboard.down("Shift");
  await page.mouse.move(box.x + box.width * from, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * ((from + to) / 2), y, { steps: 4 });
  await page.mouse.move(box.x + box.width * to, y, { steps: 4 });
  await page.mouse.up();
  if (shift) await page.keyboard.up("Shift");
}

test.beforeEach(async () => {
  server = await Server.start(tempDatabase(), await freePort());
  await seed(server);
});

test.afterEach(async () => {
  await server?.stop("SIGKILL");
});

test("figures over the view: min, max, mean and last of each signal", async ({ page }) => {
  await open(page);
  const a = chart(page, "e2e.a").locator('li.figure[data-signal="e2e.a"]');
  await expect(a.locator('[data-stat="min"]')).toHaveText("0");
  await expect(a.locator('[data-stat="max"]')).toHaveText("179");
  await expect(a.locator('[data-stat="mean"]')).toHaveText("89.5");
  await expect(a.locator('[data-stat="last"]')).toHaveText("179");
  await expect(chart(page, "e2e.b").locator('[data-stat="last"]')).toHaveText("-79");
});

test("the range picker sets the window and the URL", async ({ page }) => {
  await open(page);
  await expect(page.locator('button[data-range="1h"]')).toHaveClass(/active/);
  await page.locator('button[data-range="6h"]').click();
  await expect(page.locator('button[data-range="6h"]')).toHaveClass(/active/);
  await expect(page).toHaveURL(/range=6h/);
  const { from, to, live } = await bounds(page);
  expect(live).toBe("true");
  expect(to - from).toBe(6 * 60 * MINUTE);
  // The points are fetched for the new window too.
  await expect(chart(page, "e2e.a")).toHaveAttribute("data-points", "180");

  await page.locator('button[data-range="5m"]').click();
  await expect(page).toHaveURL(/range=5m/);
  // Only the last five minutes' points are in view: 30 of them (every 10 s).
  await expect(chart(page, "e2e.a")).toHaveAttribute("data-points", /^(29|30|31)$/);
});

test("a custom range picks fixed bounds", async ({ page }) => {
  await open(page);
  const local = (t: number) => {
    const d = new Date(t - new Date(t).getTimezoneOffset() * MINUTE);
    return d.toISOString().slice(0, 16);
  };
  const from = Math.floor((start + 5 * MINUTE) / MINUTE) * MINUTE;
  await page.locator('input[name="from"]').fill(local(from));
  await page.locator('input[name="to"]').fill(local(from + 10 * MINUTE));
  await page.locator(".custom button").click();
  await expect(page.locator(".app")).toHaveAttribute("data-live", "false");
  await expect(page.locator(".app")).toHaveAttribute("data-from", String(from));
  await expect(page.locator(".app")).toHaveAttribute("data-to", String(from + 10 * MINUTE));
  await expect(page).toHaveURL(new RegExp(`from=${from}&to=${from + 10 * MINUTE}`));
  // Ten minutes at one point per 10 s.
  await expect(chart(page, "e2e.a")).toHaveAttribute("data-points", /^(60|61)$/);
});

test("drag zooms in, double-click zooms out, the buttons and shift-drag pan", async ({ page }) => {
  await open(page);
  const canvas = chart(page, "e2e.a").locator("canvas");
  await drag(page, canvas, 0.4, 0.6);
  await expect(page.locator(".app")).toHaveAttribute("data-live", "false");
  const zoomed = await bounds(page);
  const span = zoomed.to - zoomed.from;
  expect(span).toBeGreaterThan(8 * MINUTE);
  expect(span).toBeLessThan(14 * MINUTE);
  await expect(page).toHaveURL(/from=\d+&to=\d+/);

  await canvas.dblclick();
  await expect.poll(async () => { const b = await bounds(page); return b.to - b.from; }).toBe(2 * span);
  const out = await bounds(page);

  await page.locator('button[data-action="pan-back"]').click();
  await expect.poll(async () => (await bounds(page)).to).toBe(out.to - span);
  const back = await bounds(page);

  // Shift-drag from right to left moves later in time.
  await drag(page, canvas, 0.7, 0.3, true);
  await expect.poll(async () => (await bounds(page)).to).toBeGreaterThan(back.to);
  const panned = await bounds(page);
  expect(panned.to - panned.from).toBe(back.to - back.from);
});

test("hovering one chart shows the crosshair and values on every chart", async ({ page }) => {
  await open(page);
  const box = (await chart(page, "e2e.a").locator("canvas").boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.75, box.y + box.height / 2);
  for (const signal of ["e2e.a", "e2e.b"]) {
    await expect(chart(page, signal).locator(".crosshair")).toBeVisible();
    await expect(chart(page, signal).locator('[data-stat="hover"]')).toHaveText(/^-?\d+$/);
  }
  await expect(page.locator(".toolbar .hover-time")).toHaveText(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  // The two values belong to the same instant: a + b = 100 at every point.
  const a = Number(await chart(page, "e2e.a").locator('[data-stat="hover"]').textContent());
  const b = Number(await chart(page, "e2e.b").locator('[data-stat="hover"]').textContent());
  expect(a + b).toBe(100);
  await page.mouse.move(0, 0);
  await expect(chart(page, "e2e.b").locator(".crosshair")).toBeHidden();
});

test("pause holds the picture; resuming catches up", async ({ page }) => {
  await open(page);
  await page.locator('button[data-action="pause"]').click();
  await expect(page.locator(".app")).toHaveAttribute("data-live", "false");
  await expect(page.locator('button[data-action="pause"]')).toHaveText("Resume live");
  await server.post({ timestamp: Date.now(), signals: { "e2e.a": 500 } });
  // The list's last value moves; the paused chart does not.
  await expect(page.locator('.signal-list li[data-signal="e2e.a"] .value')).toHaveText("500");
  await expect(chart(page, "e2e.a")).toHaveAttribute("data-points", "180");
  await page.locator('button[data-action="pause"]').click();
  await expect(page.locator(".app")).toHaveAttribute("data-live", "true");
  await expect(chart(page, "e2e.a")).toHaveAttribute("data-points", "181");
  await expect(chart(page, "e2e.a").locator('[data-stat="max"]')).toHaveText("500");
});

test("the URL reopens the view: range, signals, overlay and theme", async ({ page }) => {
  await open(page, "?range=15m&signals=e2e.b&theme=dark");
  await expect(page.locator('button[data-range="15m"]')).toHaveClass(/active/);
  await expect(page.locator(".app")).toHaveAttribute("data-theme", "dark");
  await expect(page.locator("article.chart")).toHaveCount(1);
  await expect(chart(page, "e2e.b")).toBeVisible();

  await open(page, "?signals=e2e.a,e2e.b&overlay=1");
  const overlay = chart(page, "overlay");
  await expect(overlay.locator("li.figure")).toHaveCount(2);
  await expect(page.locator("article.chart")).toHaveCount(1);
  await drag(page, overlay.locator("canvas"), 0.2, 0.5);
  await expect(page).toHaveURL(/from=\d+&to=\d+/);
  const before = await bounds(page);
  await page.reload();
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  expect(await bounds(page)).toEqual(before);
  await expect(chart(page, "overlay").locator("li.figure")).toHaveCount(2);
});

test("the theme switches the page and the canvas", async ({ page }) => {
  await open(page);
  const corner = () =>
    chart(page, "e2e.a")
      .locator("canvas")
      .evaluate((c: HTMLCanvasElement) => Array.from(c.getContext("2d")!.getImageData(1, 1, 1, 1).data.slice(0, 3)));
  await expect.poll(corner).toEqual([255, 255, 255]);
  await page.locator('button[data-action="theme"]').click();
  await expect(page.locator(".app")).toHaveAttribute("data-theme", "dark");
  await expect(page).toHaveURL(/theme=dark/);
  await expect.poll(corner).toEqual([15, 23, 42]);
});

test("CSV export holds exactly the points in view", async ({ page }) => {
  await open(page);
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator('button[data-action="csv"]').click(),
  ]);
  const text = fs.readFileSync((await download.path())!, "utf8");
  const lines = text.trim().split("\n");
  expect(lines[0]).toBe("signal,timestamp,time,value");
  expect(lines).toHaveLength(1 + 2 * 180);
  expect(lines[1]).toBe(`e2e.a,${start},${new Date(start).toISOString()},0`);
  expect(lines).toContain(`e2e.b,${start + 179 * 10_000},${new Date(start + 179 * 10_000).toISOString()},-79`);
});

test("the signal list filters, and its boxes choose the charts", async ({ page }) => {
  await open(page);
  await page.locator(".signal-list .filter").fill("b");
  await expect(page.locator(".signal-list li")).toHaveCount(1);
  await page.locator('.signal-list li[data-signal="e2e.b"] input[type="checkbox"]').uncheck();
  await expect(chart(page, "e2e.b")).toHaveCount(0);
  await expect(page).toHaveURL(/signals=e2e\.a(&|$)/);
  await page.locator('.signal-list li[data-signal="e2e.b"] input[type="checkbox"]').check();
  await expect(chart(page, "e2e.b")).toHaveAttribute("data-points", "180");
});

test("a thousand signals: one page of the list, a dozen charts", async ({ page }) => {
  const signals: Record<string, number> = {};
  for (let i = 0; i < 1000; i++) signals[`many.${String(i).padStart(4, "0")}`] = i;
  await server.post({ timestamp: Date.now() - 1000, signals });
  await open(page);
  await expect(page.locator(".signal-list li")).toHaveCount(100);
  await expect(page.locator(".signal-list .more")).toHaveText("902 more: narrow the filter");
  await expect(page.locator("article.chart")).toHaveCount(12);
  await page.locator(".signal-list .filter").fill("many.0999");
  await expect(page.locator(".signal-list li")).toHaveCount(1);
  await expect(page.locator('.signal-list li[data-signal="many.0999"] .value')).toHaveText("999");
});

test("without JavaScript the server's pictures show the data", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`${server.url}/?signals=e2e.a,e2e.b`);
  const picture = chart(page, "e2e.a").locator(".picture svg");
  await expect(picture).toBeVisible();
  // The line, with all 180 points (the longest polyline; the grid's are two points each), and a
  // labelled time axis.
  const lengths = await picture
    .locator("polyline")
    .evaluateAll((lines) => lines.map((l) => l.getAttribute("points")!.trim().split(/\s+/).length));
  expect(Math.max(...lengths)).toBe(180);
  await expect(picture.locator("text").first()).toBeAttached();
  await expect(chart(page, "e2e.b").locator(".picture svg polyline").first()).toBeAttached();
  await context.close();
});

test("the canvas takes the server's picture's place on hydration", async ({ page }) => {
  await open(page);
  await expect(chart(page, "e2e.a").locator(".picture")).toBeHidden();
  await expect(chart(page, "e2e.a").locator("canvas")).toBeVisible();
});
