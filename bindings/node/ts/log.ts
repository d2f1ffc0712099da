/**
 * The engine's log records (a settle flush that failed and will be
 * retried, a reconnect, a spec skipped), published on the `chasquimq`
 * diagnostics channel as `LogRecord` objects:
 *
 *     import diagnostics_channel from "node:diagnostics_channel";
 *     diagnostics_channel.subscribe("chasquimq", (r) => console.log(r));
 *
 * Records at `info` and above reach this side. While nobody subscribes,
 * warnings and errors go to `process.emitWarning` (type
 * `ChasquiMQWarning`), as Python's logging prints them to stderr when it is
 * not configured: a dropped flush is never silent.
 */

import diagnostics_channel from "node:diagnostics_channel";

/** One engine log record. `level` uses Python's numbers (20 info, 30 warning, 40 error). */
export interface LogRecord {
  level: number;
  levelName: "debug" | "info" | "warning" | "error";
  /** `chasquimq.consumer`, `chasquimq.fred.router`, … */
  logger: string;
  message: string;
}

/** The diagnostics channel's name. */
export const LOG_CHANNEL = "chasquimq";

const channel = diagnostics_channel.channel(LOG_CHANNEL);

function levelName(level: number): LogRecord["levelName"] {
  if (level >= 40) return "error";
  if (level >= 30) return "warning";
  if (level >= 20) return "info";
  return "debug";
}

/** The native module's sink (called on the JavaScript thread). */
export function onEngineRecord([level, logger, message]: [number, string, string]): void {
  const record: LogRecord = { level, levelName: levelName(level), logger, message };
  if (channel.hasSubscribers) {
    channel.publish(record);
  } else if (level >= 30) {
    process.emitWarning(`${logger}: ${message}`, { type: "ChasquiMQWarning" });
  }
}
