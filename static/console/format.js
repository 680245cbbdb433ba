/* How the console's lists word waiting times and tier paths. */

export function minutes(seconds) {
  if (seconds < 60) return `${seconds}s`;
  return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
}

export function tierPath(tiers) {
  return tiers.join(" → ");
}
