// How the dashboard performs, measured in the browser and printed (not asserted as timings: the
// figures depend on the machine and on the build; the README's come from `make perf`, which runs this
// file against the release build). What is asserted is what must hold anywhere: the points arrive,
// the charts keep drawing, a hidden tab stops, the server's picture shows before the WebAssembly.
import { expect, Page, test } from "@playwright/test";
import { freePort, Server, tempDatabase } from "./server";

let server: Server;
const soakSeconds = Number(process.env.PERF_SOAK_SECONDS ?? "20");

test.beforeEach(async () => {
  server = await Server.start(tempDatabase(), await freePort());
});

test.afterEach(async () => {
  await server?.stop("SIGKILL");
});

async function open(page: Page, query: string): Promise<void> {
  await page.goto(`${server.url}/${query}`);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("#connection")).toHaveAttribute("data-state", "live");
}

/** Posts one sample of `signals` every `ms` until `stop()` is called. */
function feed(signals: string[], ms: number): { stop: () => Promise<void> } {
  let running = true;
  let value = 0;
  const loop = (async () => {
    while (running) {
      const sample: Record<string, number> = {};
      for (const s of signals) sample[s] = Math.sin(value / 10) * 50 + (value % 7);
      value++;
      await server.post({ timestamp: Date.now(), signals: sample });
      await new Promise((r) => setTimeout(r, ms));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** Frames drawn per second and the longest frame over `seconds`, from requestAnimationFrame. */
function frameRate(page: Page, seconds: number): Promise<{ fps: number; worstMs: number }> {
  return page.evaluate(
    (seconds) =>
      new Promise((resolve) => {
        const deltas: number[] = [];
        let last = performance.now();
        const end = last + seconds * 1000;
        const frame = (now: number) => {
          deltas.push(now - last);
          last = now;
          if (now < end) requestAnimationFrame(frame);
          else resolve({ fps: deltas.length / seconds, worstMs: Math.max(...deltas) });
        };
        requestAnimationFrame(frame);
      }),
    seconds,
  );
}

/** The draw times a chart reports (`data-draw-ms`) while `seconds` pass. */
function drawTimes(page: Page, signal: string, seconds: number): Promise<number[]> {
  return page.evaluate(
    ([signal, seconds]) =>
      new Promise<number[]>((resolve) => {
        const chart = document.querySelector(`article.chart[data-signal="${signal}"]`)!;
        const times: number[] = [];
        const observer = new MutationObserver(() => times.push(Number(chart.getAttribute("data-draw-ms"))));
        observer.observe(chart, { attributes: true, attributeFilter: ["data-draw-ms"] });
        setTimeout(() => {
          observer.disconnect();
          resolve(times);
        }, (seconds as number) * 1000);
      }),
    [signal, seconds] as const,
  );
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test("a million points in view: redraw time", async ({ page }) => {
  test.setTimeout(180_000);
  // The signal exists before the page opens, so the page's history read is done before the points
  // arrive: 1,000,000 points over the last 20 minutes, in requests of 100,000, all received live.
  const start = Date.now() - 20 * 60_000;
  await server.post({ timestamp: start - 1, signals: { "perf.big": 0 } });
  await open(page, "?range=30m&signals=perf.big");
  for (let batch = 0; batch < 10; batch++) {
    const samples = [];
    for (let i = batch * 100_000; i < (batch + 1) * 100_000; i++) {
      samples.push({ timestamp: start + Math.floor(i * 1.2), signals: { "perf.big": Math.sin(i / 5000) * 100 + (i % 97) } });
    }
    await server.post(samples);
  }
  const chart = page.locator('article.chart[data-signal="perf.big"]');
  await expect(chart).toHaveAttribute("data-points", "1000001", { timeout: 60_000 });
  const ticking = feed(["perf.big"], 100);
  const [draws, frames] = await Promise.all([drawTimes(page, "perf.big", 5), frameRate(page, 5)]);
  await ticking.stop();
  expect(draws.length).toBeGreaterThan(5);
  console.log(
    `PERF 1M points in view: redraw median ${median(draws).toFixed(1)} ms, worst ${Math.max(...draws).toFixed(1)} ms ` +
      `(${draws.length} redraws); ${frames.fps.toFixed(1)} frames/s, longest frame ${frames.worstMs.toFixed(1)} ms`,
  );
});

test("fifty signals at 10 Hz: frame rate", async ({ page }) => {
  test.setTimeout(120_000);
  const signals = Array.from({ length: 50 }, (_, i) => `perf.s${String(i).padStart(2, "0")}`);
  const seed: Record<string, number> = {};
  for (const s of signals) seed[s] = 0;
  await server.post({ timestamp: Date.now() - 1000, signals: seed });
  await open(page, `?range=5m&signals=${signals.join(",")}`);
  await expect(page.locator("article.chart")).toHaveCount(50);
  const ticking = feed(signals, 100);
  await page.waitForTimeout(1000);
  const frames = await frameRate(page, 5);
  const drawn = await page
    .locator("article.chart")
    .evaluateAll((charts) => charts.filter((c) => c.hasAttribute("data-draw-ms")).length);
  await ticking.stop();
  // Every chart on screen keeps up; the ones scrolled away have not drawn at all.
  expect(drawn).toBeGreaterThan(0);
  expect(drawn).toBeLessThan(50);
  console.log(
    `PERF 50 signals at 10 Hz: ${frames.fps.toFixed(1)} frames/s, longest frame ${frames.worstMs.toFixed(1)} ms; ` +
      `${drawn} of 50 charts drawn (the others are off screen)`,
  );
});

test("memory stays flat under live updates", async ({ page }) => {
  test.setTimeout((soakSeconds + 120) * 1000);
  const signals = ["perf.m0", "perf.m1", "perf.m2", "perf.m3", "perf.m4"];
  await open(page, "?range=1m");
  const ticking = feed(signals, 100);
  const sample = () =>
    page.evaluate(() => ({
      js: (performance as unknown as { memory: { usedJSHeapSize: number } }).memory.usedJSHeapSize,
      wasm: Number(document.documentElement.getAttribute("data-wasm-memory")),
    }));
  // The one-minute window fills first; after that, what the page holds should not grow.
  await page.waitForTimeout(Math.min(60, soakSeconds) * 1000);
  const first = await sample();
  await page.waitForTimeout(soakSeconds * 1000);
  const last = await sample();
  await ticking.stop();
  await expect(page.locator('article.chart[data-signal="perf.m0"]')).toHaveAttribute("data-points", /^\d+$/);
  const mb = (b: number) => (b / 1e6).toFixed(2);
  console.log(
    `PERF memory over ${soakSeconds} s at 10 Hz × 5 signals: JS heap ${mb(first.js)} → ${mb(last.js)} MB, ` +
      `WebAssembly ${mb(first.wasm)} → ${mb(last.wasm)} MB`,
  );
  expect(last.wasm).toBeGreaterThan(0);
});

test("a hidden tab stops drawing and catches up when shown", async ({ page }) => {
  await server.post({ timestamp: Date.now() - 2000, signals: { "perf.tab": 1 } });
  await open(page, "");
  const chart = page.locator('article.chart[data-signal="perf.tab"]');
  const image = () => chart.locator("canvas").evaluate((c: HTMLCanvasElement) => c.toDataURL());
  await expect(chart).toHaveAttribute("data-draw-ms", /\d/);
  const setHidden = (hidden: boolean) =>
    page.evaluate((hidden) => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (hidden ? "hidden" : "visible") });
      document.dispatchEvent(new Event("visibilitychange"));
      window.dispatchEvent(new Event("visibilitychange"));
    }, hidden);
  await setHidden(true);
  await page.waitForTimeout(200);
  const hidden = await image();
  await server.post({ timestamp: Date.now() - 1000, signals: { "perf.tab": 50 } });
  await expect(chart).toHaveAttribute("data-points", "2");
  await page.waitForTimeout(1500);
  expect(await image()).toBe(hidden);
  await setHidden(false);
  await expect.poll(image, { timeout: 3000 }).not.toBe(hidden);
});

test("the server's picture paints before the WebAssembly arrives", async ({ page }) => {
  await server.post({ timestamp: Date.now() - 2000, signals: { "perf.fcp": 1 } });
  await server.post({ timestamp: Date.now() - 1000, signals: { "perf.fcp": 2 } });
  // Hold the WebAssembly back for a second and a half, as a slow network would.
  await page.route("**/*.wasm", async (route) => {
    await new Promise((r) => setTimeout(r, 1500));
    await route.continue();
  });
  await page.goto(server.url);
  await expect(page.locator('article.chart[data-signal="perf.fcp"] .picture svg')).toBeVisible();
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true", { timeout: 15_000 });
  const timing = await page.evaluate(() => {
    const fcp = performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN;
    const wasm = performance.getEntriesByType("resource").find((e) => e.name.endsWith(".wasm")) as PerformanceResourceTiming;
    return { fcp, wasm: wasm.responseEnd };
  });
  expect(timing.fcp).toBeLessThan(timing.wasm);
  console.log(
    `PERF first contentful paint ${timing.fcp.toFixed(0)} ms (the server's picture); WebAssembly loaded at ` +
      `${timing.wasm.toFixed(0)} ms (held back 1.5 s)`,
  );
});

test("a hundred thousand signals: the list filters as keys are typed", async ({ page }) => {
  test.setTimeout(180_000);
  // 100,000 signals with a point each, in requests of 10 samples of 1,000 signals.
  const t = Date.now() - 60_000;
  const name = (i: number) => `wide.s${String(i).padStart(5, "0")}`;
  for (let request = 0; request < 10; request++) {
    const samples = [];
    for (let k = 0; k < 10; k++) {
      const signals: Record<string, number> = {};
      const first = (request * 10 + k) * 1_000;
      for (let i = first; i < first + 1_000; i++) signals[name(i)] = i;
      samples.push({ timestamp: t, signals });
    }
    await server.post(samples);
  }
  await open(page, `?signals=${name(0)}`);
  await expect(page.locator(".signal-list .more")).toHaveText("99900 more: narrow the filter", { timeout: 60_000 });
  // Each key typed, then the time until the frame after the list changed.
  const times = await page.evaluate(async (text) => {
    const input = document.querySelector<HTMLInputElement>(".signal-list .filter")!;
    const frame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    const out: number[] = [];
    for (let n = 1; n <= text.length; n++) {
      const began = performance.now();
      input.value = text.slice(0, n);
      input.dispatchEvent(new Event("input", { bubbles: true }));
      await frame();
      out.push(performance.now() - began);
    }
    return out;
  }, "wide.s0999");
  await expect(page.locator(".signal-list li")).toHaveCount(10);
  await expect(page.locator('.signal-list li[data-signal="wide.s09995"] .value')).toHaveText("9.995k");
  await expect(page.locator(".signal-list .more")).toHaveText("");
  console.log(
    `PERF 100,000 signals: filtering the list ${median(times).toFixed(1)} ms a key (median of ${times.length}), ` +
      `worst ${Math.max(...times).toFixed(1)} ms`,
  );
});
