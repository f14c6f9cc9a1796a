/**
 * Pure formatting of the figures the UI shows (no DOM: unit-tested in node).
 * Every formatter accepts the API's "no data" (null) and answers an em dash,
 * so a table cell never reads "NaN" or "null".
 */

export const NO_DATA = "—";

/** Requests per second: 0, 0.25, 3.5, 12.4, 1,234. */
export function formatRps(rps: number | null | undefined): string {
  if (rps === null || rps === undefined || !Number.isFinite(rps)) return NO_DATA;
  if (rps === 0) return "0";
  if (rps < 10) return trimZeros(rps.toFixed(2));
  if (rps < 100) return trimZeros(rps.toFixed(1));
  return Math.round(rps).toLocaleString("en-US");
}

/**
 * A success rate (0..1) as a percentage with one decimal, rounded DOWN so
 * that 99.96 % is never shown as "100%" while some requests failed.
 */
export function formatRate(rate: number | null | undefined): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return NO_DATA;
  if (rate >= 1) return "100%";
  const tenths = Math.floor(Math.max(0, rate) * 1000) / 10;
  return `${tenths.toFixed(1)}%`;
}

/** A latency in milliseconds: 0.42 ms, 3.1 ms, 120 ms, 1.25 s. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return NO_DATA;
  if (ms < 1) return `${trimZeros(ms.toFixed(2))} ms`;
  if (ms < 10) return `${trimZeros(ms.toFixed(1))} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${trimZeros((ms / 1000).toFixed(2))} s`;
}

function trimZeros(s: string): string {
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
}

/** A duration in words, coarse: "45 s", "12 min", "5 h", "3 d". */
export function formatDuration(ms: number): string {
  const s = Math.abs(ms) / 1000;
  if (s < 90) return `${Math.round(s)} s`;
  const m = s / 60;
  if (m < 90) return `${Math.round(m)} min`;
  const h = m / 60;
  if (h < 48) return `${Math.round(h)} h`;
  return `${Math.round(h / 24)} d`;
}

/** An ISO time as "2026-11-21 13:52 UTC" (certificates: minutes are precise enough). */
export function formatDate(iso: string): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return NO_DATA;
  return `${new Date(t).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export type ExpiryLevel = "ok" | "soon" | "expired";

/**
 * When a certificate expires, relative to `now`: "in 3 d" / "expired 5 min ago",
 * and a level: "soon" past half of its lifetime when `notBefore` is known
 * (HARDENING: alarms at half a certificate's lifetime), else within 1 h
 * (a leaf is renewed at half its lifetime, so an hour left means renewal failed).
 */
export function formatExpiry(
  notAfter: string,
  now: number,
  notBefore?: string,
): { text: string; level: ExpiryLevel } {
  const end = Date.parse(notAfter);
  if (!Number.isFinite(end)) return { text: NO_DATA, level: "ok" };
  const left = end - now;
  if (left <= 0) return { text: `expired ${formatDuration(left)} ago`, level: "expired" };
  const start = notBefore !== undefined ? Date.parse(notBefore) : Number.NaN;
  const soon = Number.isFinite(start) ? now - start > (end - start) / 2 : left < 3600_000;
  return { text: `in ${formatDuration(left)}`, level: soon ? "soon" : "ok" };
}

export type RateClass = "idle" | "good" | "warn" | "bad";

/** How a success rate reads at a glance: >= 99 % good, >= 95 % warn, else bad; null (no traffic) idle. */
export function rateClass(rate: number | null | undefined): RateClass {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return "idle";
  if (rate >= 0.99) return "good";
  if (rate >= 0.95) return "warn";
  return "bad";
}

export type Health = "passing" | "warning" | "critical";

export interface HealthCounts {
  passing: number;
  warning: number;
  critical: number;
}

/** The worst state present; a service without instances is critical (nothing can serve it). */
export function overallHealth(c: HealthCounts): Health {
  if (c.critical > 0 || c.passing + c.warning === 0) return "critical";
  if (c.warning > 0) return "warning";
  return "passing";
}

/** "2 passing, 1 critical" (zero counts left out; "no instances" when all are zero). */
export function healthText(c: HealthCounts): string {
  const parts: string[] = [];
  if (c.passing) parts.push(`${c.passing} passing`);
  if (c.warning) parts.push(`${c.warning} warning`);
  if (c.critical) parts.push(`${c.critical} critical`);
  return parts.length > 0 ? parts.join(", ") : "no instances";
}

// Shared with `weft explain` and `weft xds` (pure, no imports: safe in the browser bundle).
export { describeNack as nackText, isProxyless as isProxylessInstance } from "@weft/api/xds";
