// Opens a `lab report` page in Debian's headless Chromium (playwright-core, never a downloaded
// browser) with the network cut off, and says what a person would see: how many charts the page
// meant to draw and drew, which canvases stayed blank, and every console error or failed request.
// Given a probe (an expression evaluated once the page has loaded, images included), it also
// says what the page holds: the hostile-file tests ask whether any injected script ran.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Why the browser check cannot run here, or null when it can. In CI a missing browser is a failure, not a skip. */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is not installed (apt-get install chromium)`;
}

export interface PageCheck {
  expectedCharts: number;
  drawnCharts: string[];
  canvases: number;
  /** Canvases with no painted pixel. */
  blankCanvases: number;
  consoleErrors: string[];
  /** Requests the page tried to make (a self-contained report makes none). */
  requests: string[];
  /** document.title once the page has loaded. */
  title: string;
  /** What the probe expression gave (undefined without one). */
  probed: unknown;
}

export async function checkReportPage(file: string, screenshot?: string, probe?: string): Promise<PageCheck> {
  const profile = mkdtempSync(join(tmpdir(), 'lab-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    viewport: { width: 1280, height: 900 },
    offline: true,
  });
  try {
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    const requests: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(error.message));
    page.on('request', (request) => {
      if (!request.url().startsWith('file:')) requests.push(request.url());
    });
    await page.goto(`file://${file}`);
    // Page code as strings: it runs in the browser, whose DOM types this project does not compile against.
    await page
      .waitForFunction(
        'window.labCharts !== undefined && window.labCharts.expected > 0 && window.labCharts.drawn.size >= window.labCharts.expected',
        undefined,
        {
          timeout: 15_000,
        },
      )
      .catch(() => undefined); // the figures below say what was missing
    const figures = await page.evaluate<{ expected: number; drawn: string[]; canvases: number; blank: number }>(`(() => {
      const charts = window.labCharts;
      const canvases = [...document.querySelectorAll('canvas')];
      const blank = canvases.filter((canvas) => {
        const context = canvas.getContext('2d');
        if (!context || canvas.width === 0 || canvas.height === 0) return true;
        const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return false;
        return true;
      }).length;
      return { expected: charts ? charts.expected : 0, drawn: charts ? [...charts.drawn] : [], canvases: canvases.length, blank };
    })()`);
    // `load` comes after every image has loaded or failed: an injected <img onerror> has run by then.
    await page.waitForFunction("document.readyState === 'complete'", undefined, { timeout: 15_000 });
    const title = await page.title();
    const probed = probe === undefined ? undefined : await page.evaluate<unknown>(probe);
    // The README's picture: the charts and the USL table, not the long table of points.
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true, clip: { x: 0, y: 0, width: 1280, height: 1760 } });
    return {
      expectedCharts: figures.expected,
      drawnCharts: figures.drawn,
      canvases: figures.canvases,
      blankCanvases: figures.blank,
      consoleErrors,
      requests,
      title,
      probed,
    };
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
