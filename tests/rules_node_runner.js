/*
 * Runs conditions through the browser evaluator (tailorcrm/renderer/static/rules.js)
 * under node, for tests/test_rules_browser.py.
 *
 *   node rules_node_runner.js CASES.json RESULTS.json   one batch, file to file
 *   node rules_node_runner.js --lines                   one case per line on stdin,
 *                                                       one answer per line on stdout
 *
 * A case is {"condition", "data", "strict", "typed", "now", "prior", "user"}. The
 * last three, when present, go into the data as $now, $prior and $user, as the
 * server puts them. With "typed", single-key objects {"$decimal": text},
 * {"$date": text} and {"$datetime": text} in the condition and the data stand for
 * the typed values the server holds (Decimal, date, datetime).
 *
 * An answer is {"value": result} or {"error": {"kind": "condition", "code", "path"}},
 * {"error": {"kind": "evaluation", "type", "value"}}, {"error": {"kind": "crash",
 * "message"}}, plus "ms", the time the evaluation took. In results a Decimal is
 * written {"$decimal": text}.
 */
"use strict";

const fs = require("fs");
const path = require("path");
const readline = require("readline");

const Rules = require(path.join(
  __dirname, "..", "tailorcrm", "renderer", "static", "rules.js"
));

const TAGS = {
  $decimal: Rules.decimal,
  $date: Rules.date,
  $datetime: Rules.datetime,
};

function decode(value) {
  if (Array.isArray(value)) {
    return value.map(decode);
  }
  if (value === null || typeof value !== "object") {
    return value;
  }
  const keys = Object.keys(value);
  if (keys.length === 1 && Object.prototype.hasOwnProperty.call(TAGS, keys[0])) {
    return TAGS[keys[0]](value[keys[0]]);
  }
  const copy = {};
  for (const key of keys) {
    Object.defineProperty(copy, key, {
      value: decode(value[key]), enumerable: true, writable: true, configurable: true,
    });
  }
  return copy;
}

function encode(value) {
  if (value instanceof Rules.Decimal) {
    return { $decimal: value.toString() };
  }
  if (Array.isArray(value)) {
    return value.map(encode);
  }
  if (value !== null && typeof value === "object") {
    const copy = {};
    for (const key of Object.keys(value)) {
      Object.defineProperty(copy, key, {
        value: encode(value[key]), enumerable: true, writable: true, configurable: true,
      });
    }
    return copy;
  }
  return value === undefined ? null : value;
}

function withOptions(data, item) {
  const extra = [["$now", "now"], ["$prior", "prior"], ["$user", "user"]]
    .filter(([, option]) => Object.prototype.hasOwnProperty.call(item, option));
  if (!extra.length) {
    return data;
  }
  const merged = data !== null && typeof data === "object" && !Array.isArray(data)
    ? Object.assign({}, data) : {};
  for (const [key, option] of extra) {
    merged[key] = item.typed ? decode(item[option]) : item[option];
  }
  return merged;
}

function run(item) {
  const condition = item.typed ? decode(item.condition) : item.condition;
  const raw = item.data === undefined ? null : item.data;
  const data = withOptions(item.typed ? decode(raw) : raw, item);
  const started = process.hrtime.bigint();
  let answer;
  try {
    const compiled = Rules.compile(condition, { strict: Boolean(item.strict) });
    answer = { value: encode(compiled(data)) };
  } catch (error) {
    if (error instanceof Rules.ConditionError) {
      answer = { error: { kind: "condition", code: error.code, path: error.path } };
    } else if (error instanceof Rules.EvaluationError) {
      answer = { error: { kind: "evaluation", type: error.type, value: encode(error.value) } };
    } else {
      answer = { error: { kind: "crash", message: String(error && error.stack) } };
    }
  }
  answer.ms = Number(process.hrtime.bigint() - started) / 1e6;
  return answer;
}

function main(args) {
  if (args[0] === "--lines") {
    const lines = readline.createInterface({ input: process.stdin });
    lines.on("line", (line) => {
      process.stdout.write(JSON.stringify(run(JSON.parse(line))) + "\n");
    });
    return;
  }
  const cases = JSON.parse(fs.readFileSync(args[0], "utf8"));
  fs.writeFileSync(args[1], JSON.stringify(cases.map(run)));
}

main(process.argv.slice(2));
