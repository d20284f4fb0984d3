/*
 * Tailor CRM: the condition language in the browser.
 *
 * Forms evaluate field state (visible, required, read-only, computed values) live
 * with the same JSON conditions the server runs. This file is our own evaluator of
 * that language: JSON Logic plus the CRM operations of
 * tailorcrm/rules_engine/OPERATIONS.md, with exactly the Python engine's meaning
 * (truthiness, null and blank, numbers, dates, failures). The server always
 * decides; the browser only helps. tests/test_rules_browser.py runs the official
 * JSON Logic suite, the community suites and our operations' cases through this
 * file under node and compares every answer with Python's.
 *
 * Plain ES2020 without dependencies or a build step. In a page it defines one
 * global, TailorRules; under node it is the module's exports.
 *
 *   var rule = TailorRules.compile({"==": [{"var": "stage"}, "won"]});
 *   rule({stage: "won"});                                   // true
 *   TailorRules.evaluate({"today": []}, {$now: "2024-05-31T12:00:00Z"});  // "2024-05-31"
 *
 * Values are JSON values. Dates are ISO 8601 text, as on the server's API; a result
 * that is a date or a moment is ISO text too. Where the server holds a typed value,
 * the page can hand the same type: TailorRules.date("2024-05-31"),
 * TailorRules.datetime("2024-05-31T14:30:00+02:00") and
 * TailorRules.decimal("19.98") (exact decimal arithmetic, as Python's Decimal
 * with 28 significant digits). A result computed from decimals is a
 * TailorRules.Decimal; its toString() is its text and Number(value) its number.
 * TailorRules.strip(text) removes the spaces Python's str.strip() removes, which
 * are not those of String.prototype.trim().
 */
(function (root, factory) {
  "use strict";
  var api = factory();
  if (typeof module === "object" && module && module.exports) {
    module.exports = api;
  } else {
    root.TailorRules = api;
  }
})(typeof globalThis !== "undefined" ? globalThis : this, function () {
  "use strict";

  var MAX_DEPTH = 32;
  var MAX_SIZE = 10240;
  var hasOwn = Object.prototype.hasOwnProperty;

  // -- errors -----------------------------------------------------------------------

  // Error types named by the JSON Logic community specification.
  var NAN = "NaN";
  var INVALID_ARGUMENTS = "Invalid Arguments";
  var UNKNOWN_OPERATOR = "Unknown Operator";

  /** A condition that cannot be compiled, whatever the data (as in Python). */
  class ConditionError extends Error {
    constructor(message, path, code) {
      super(path ? path + ": " + message : message);
      this.name = "ConditionError";
      this.path = path;
      this.code = code;
      this.type = code === "unknown_operator" ? UNKNOWN_OPERATOR : INVALID_ARGUMENTS;
    }
  }

  /** A failure while a condition runs; seen by callers in strict mode only. */
  class EvaluationError extends Error {
    constructor(type, message, value) {
      super(message || type);
      this.name = "EvaluationError";
      this.code = "evaluation_failed";
      this.type = type;
      this.value = value !== undefined && value !== null ? value : { type: type };
    }
  }

  function nan(message) {
    return new EvaluationError(NAN, message);
  }

  function invalidArguments(message) {
    return new EvaluationError(INVALID_ARGUMENTS, message);
  }

  // -- exact decimals -----------------------------------------------------------------

  // Python's default decimal context: 28 significant digits, half-even rounding.
  var PREC = 28;
  var POWERS = [1n];

  function pow10(count) {
    while (POWERS.length <= count && POWERS.length < 400) {
      POWERS.push(POWERS[POWERS.length - 1] * 10n);
    }
    return count < POWERS.length ? POWERS[count] : 10n ** BigInt(count);
  }

  function digitCount(big) {
    return (big < 0n ? -big : big).toString().length;
  }

  /** An exact decimal number: coefficient (a BigInt) times ten to exponent. */
  class Decimal {
    constructor(coefficient, exponent) {
      this.coef = coefficient;
      this.exp = exponent;
    }

    isZero() {
      return this.coef === 0n;
    }

    adjusted() {
      return this.exp + digitCount(this.coef) - 1;
    }

    /** Python's str(Decimal): scientific notation past the usual range. */
    toString() {
      var negative = this.coef < 0n;
      var digits = (negative ? -this.coef : this.coef).toString();
      var left = this.exp + digits.length;
      var dot = this.exp <= 0 && left > -6 ? left : 1;
      var whole;
      var fraction = "";
      if (dot <= 0) {
        whole = "0";
        fraction = "." + "0".repeat(-dot) + digits;
      } else if (dot >= digits.length) {
        whole = digits + "0".repeat(dot - digits.length);
      } else {
        whole = digits.slice(0, dot);
        fraction = "." + digits.slice(dot);
      }
      var exponent = "";
      if (left !== dot) {
        var shift = left - dot;
        exponent = "E" + (shift >= 0 ? "+" : "-") + Math.abs(shift);
      }
      return (negative ? "-" : "") + whole + fraction + exponent;
    }

    toJSON() {
      return this.toString();
    }
  }

  var DECIMAL_TEXT = /^([+-]?)(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))(?:[eE]([+-]?[0-9]+))?$/;

  function decimalFromText(text) {
    var found = DECIMAL_TEXT.exec(String(text).trim());
    if (!found) {
      throw new TypeError("Not a decimal number: " + String(text).slice(0, 40));
    }
    var whole = found[2] !== undefined ? found[2] : "";
    var fraction = found[3] !== undefined ? found[3] : found[4] || "";
    var coefficient = BigInt(whole + fraction || "0");
    var exponent = (found[5] ? parseInt(found[5], 10) : 0) - fraction.length;
    return new Decimal(found[1] === "-" ? -coefficient : coefficient, exponent);
  }

  /** A finite number as the Decimal of its shortest text (Python: Decimal(repr(x))). */
  function decimalFromNumber(number) {
    var text = number.toExponential();
    var mark = text.indexOf("e");
    var mantissa = text.slice(0, mark);
    var negative = mantissa[0] === "-";
    var digits = mantissa.replace("-", "").replace(".", "");
    var point = mantissa.indexOf(".");
    var fractionLength = point < 0 ? 0 : mantissa.length - point - 1;
    var coefficient = BigInt(digits);
    var exponent = parseInt(text.slice(mark + 1), 10) - fractionLength;
    return new Decimal(negative ? -coefficient : coefficient, exponent);
  }

  function asDecimal(value) {
    return value instanceof Decimal ? value : decimalFromNumber(value);
  }

  // The largest number of JavaScript, as a whole number: no number of the
  // language, a Decimal included, is larger (Python: _finite_decimal).
  var NUMBER_LIMIT = BigInt(Number.MAX_VALUE);

  /** Whether a Decimal is within JavaScript's numbers, as every number must be. */
  function decimalWithinNumbers(value) {
    var adjusted = value.adjusted();
    if (adjusted !== 308) {
      return adjusted < 308 || value.isZero();
    }
    var magnitude = value.coef < 0n ? -value.coef : value.coef;
    return value.exp >= 0
      ? magnitude * pow10(value.exp) <= NUMBER_LIMIT
      : magnitude <= NUMBER_LIMIT * pow10(-value.exp);
  }

  // Round to the context's precision, half to even, as every Decimal result is.
  function fix(coefficient, exponent) {
    var negative = coefficient < 0n;
    var magnitude = negative ? -coefficient : coefficient;
    var count = digitCount(magnitude);
    if (count > PREC) {
      var drop = count - PREC;
      var unit = pow10(drop);
      var kept = magnitude / unit;
      var rest = magnitude % unit;
      var half = unit / 2n;
      if (rest > half || (rest === half && kept % 2n === 1n)) {
        kept += 1n;
      }
      exponent += drop;
      if (digitCount(kept) > PREC) {
        kept /= 10n;
        exponent += 1;
      }
      magnitude = kept;
    }
    return new Decimal(negative ? -magnitude : magnitude, exponent);
  }

  function decimalAdd(left, right) {
    if (left.isZero()) {
      return fix(right.coef, right.exp);
    }
    if (right.isZero()) {
      return fix(left.coef, left.exp);
    }
    var high = left.exp >= right.exp ? left : right;
    var low = high === left ? right : left;
    // A far smaller operand only decides the rounding: stand it in by a unit
    // below the last digit that can count (General Decimal Arithmetic, addition).
    var floor = high.exp + Math.min(-1, digitCount(high.coef) - PREC - 2);
    var lowCoef = low.coef;
    var lowExp = low.exp;
    if (digitCount(lowCoef) + lowExp - 1 < floor) {
      lowCoef = lowCoef < 0n ? -1n : 1n;
      lowExp = floor;
    }
    return fix(high.coef * pow10(high.exp - lowExp) + lowCoef, lowExp);
  }

  function decimalNegate(value) {
    return new Decimal(-value.coef, value.exp);
  }

  function decimalMultiply(left, right) {
    return fix(left.coef * right.coef, left.exp + right.exp);
  }

  function decimalDivide(dividend, divisor) {
    if (dividend.isZero()) {
      return fix(0n, dividend.exp - divisor.exp);
    }
    var negative = (dividend.coef < 0n) !== (divisor.coef < 0n);
    var top = dividend.coef < 0n ? -dividend.coef : dividend.coef;
    var bottom = divisor.coef < 0n ? -divisor.coef : divisor.coef;
    var shift = digitCount(bottom) - digitCount(top) + PREC + 1;
    var exponent = dividend.exp - divisor.exp - shift;
    if (shift >= 0) {
      top *= pow10(shift);
    } else {
      bottom *= pow10(-shift);
    }
    var quotient = top / bottom;
    if (top % bottom !== 0n) {
      // An inexact quotient whose last digit is 0 or 5 would round as if exact.
      if (quotient % 5n === 0n) {
        quotient += 1n;
      }
    } else {
      var ideal = dividend.exp - divisor.exp;
      while (exponent < ideal && quotient % 10n === 0n) {
        quotient /= 10n;
        exponent += 1;
      }
    }
    return fix(negative ? -quotient : quotient, exponent);
  }

  function decimalRemainder(dividend, divisor) {
    var ideal = Math.min(dividend.exp, divisor.exp);
    if (dividend.isZero()) {
      return fix(0n, ideal);
    }
    var spread = dividend.adjusted() - divisor.adjusted();
    if (spread <= -2) {
      return fix(dividend.coef, dividend.exp);
    }
    if (spread > PREC) {
      throw nan("The remainder is out of range.");
    }
    var top = dividend.coef < 0n ? -dividend.coef : dividend.coef;
    var bottom = divisor.coef < 0n ? -divisor.coef : divisor.coef;
    top *= pow10(dividend.exp - ideal);
    bottom *= pow10(divisor.exp - ideal);
    if (top / bottom >= pow10(PREC)) {
      throw nan("The remainder is out of range.");
    }
    var rest = top % bottom;
    return fix(dividend.coef < 0n ? -rest : rest, ideal);
  }

  function decimalCompare(left, right) {
    var leftSign = left.coef < 0n ? -1 : left.coef > 0n ? 1 : 0;
    var rightSign = right.coef < 0n ? -1 : right.coef > 0n ? 1 : 0;
    if (leftSign !== rightSign) {
      return leftSign < rightSign ? -1 : 1;
    }
    if (leftSign === 0) {
      return 0;
    }
    var leftAdjusted = left.adjusted();
    var rightAdjusted = right.adjusted();
    if (leftAdjusted !== rightAdjusted) {
      return (leftAdjusted < rightAdjusted ? -1 : 1) * leftSign;
    }
    var exponent = Math.min(left.exp, right.exp);
    var a = left.coef * pow10(left.exp - exponent);
    var b = right.coef * pow10(right.exp - exponent);
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function decimalIsIntegral(value) {
    return value.exp >= 0 || value.coef % pow10(-value.exp) === 0n;
  }

  function decimalTruncate(value) {
    if (value.exp >= 0) {
      return value.exp > 400 ? (value.coef < 0n ? -Infinity : Infinity)
        : Number(value.coef * pow10(value.exp));
    }
    if (-value.exp > digitCount(value.coef)) {
      return 0;
    }
    return Number(value.coef / pow10(-value.exp));
  }

  // Python's format(value.normalize(), "f"): rounded to the precision, without
  // trailing zeros, never in scientific notation.
  function decimalText(value) {
    if (value.isZero()) {
      return "0";
    }
    var rounded = fix(value.coef, value.exp);
    var coefficient = rounded.coef;
    var exponent = rounded.exp;
    while (coefficient % 10n === 0n) {
      coefficient /= 10n;
      exponent += 1;
    }
    var negative = coefficient < 0n;
    var digits = (negative ? -coefficient : coefficient).toString();
    var text;
    if (exponent >= 0) {
      text = digits + "0".repeat(exponent);
    } else if (digits.length > -exponent) {
      text = digits.slice(0, digits.length + exponent) + "." + digits.slice(exponent);
    } else {
      text = "0." + "0".repeat(-exponent - digits.length) + digits;
    }
    return (negative ? "-" : "") + text;
  }

  // value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP), or null
  // where Python's quantize refuses (more digits than the precision).
  function decimalRoundHalfUp(value, places) {
    var target = -places;
    if (value.isZero()) {
      return new Decimal(0n, target);
    }
    if (value.adjusted() - target + 1 > PREC) {
      return null;
    }
    var negative = value.coef < 0n;
    var magnitude = negative ? -value.coef : value.coef;
    var result;
    if (value.exp >= target) {
      result = magnitude * pow10(value.exp - target);
    } else {
      var drop = target - value.exp;
      if (drop > digitCount(magnitude) + 1) {
        result = 0n;
      } else {
        var unit = pow10(drop);
        result = magnitude / unit;
        if ((magnitude % unit) * 2n >= unit) {
          result += 1n;
        }
      }
    }
    if (digitCount(result) > PREC) {
      return null;
    }
    return new Decimal(negative ? -result : result, target);
  }

  // -- dates and moments --------------------------------------------------------------

  var ISO = new RegExp(
    "^([0-9]{4})-([0-9]{2})-([0-9]{2})" +
    "(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\\.([0-9]{1,6}))?)?" +
    "(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?$"
  );
  var UNITS = ["days", "months", "years"];
  var MAX_DAYS = 10000000;
  var DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

  function isLeap(year) {
    return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  }

  function monthLength(year, month) {
    return month === 2 && isLeap(year) ? 29 : DAYS_IN_MONTH[month - 1];
  }

  // Days since 0001-01-01 (day 0), in the proleptic Gregorian calendar.
  function dayNumber(year, month, day) {
    var before = year - 1;
    var days = before * 365 + Math.floor(before / 4) - Math.floor(before / 100) +
      Math.floor(before / 400);
    for (var m = 1; m < month; m++) {
      days += monthLength(year, m);
    }
    return days + day - 1;
  }

  function fromDayNumber(number) {
    var year = Math.floor(number / 365.2425) + 1;
    while (dayNumber(year, 1, 1) > number) {
      year -= 1;
    }
    while (dayNumber(year + 1, 1, 1) <= number) {
      year += 1;
    }
    var rest = number - dayNumber(year, 1, 1);
    var month = 1;
    while (rest >= monthLength(year, month)) {
      rest -= monthLength(year, month);
      month += 1;
    }
    return [year, month, rest + 1];
  }

  function pad(number, width) {
    var text = String(number);
    return text.length >= width ? text : "0".repeat(width - text.length) + text;
  }

  /**
   * A date or a moment, as Python's datetime.date and datetime.datetime: a moment
   * has a time and an offset in minutes, or none (read as UTC).
   */
  class RuleDate {
    constructor(year, month, day, time) {
      this.year = year;
      this.month = month;
      this.day = day;
      this.time = time || null; // {hour, minute, second, micro, offset|null}
    }

    get isDateTime() {
      return this.time !== null;
    }

    toISOString() {
      var text = pad(this.year, 4) + "-" + pad(this.month, 2) + "-" + pad(this.day, 2);
      var time = this.time;
      if (time === null) {
        return text;
      }
      text += "T" + pad(time.hour, 2) + ":" + pad(time.minute, 2) + ":" +
        pad(time.second, 2);
      if (time.micro) {
        text += "." + pad(time.micro, 6);
      }
      if (time.offset !== null) {
        var sign = time.offset < 0 ? "-" : "+";
        var minutes = Math.abs(time.offset);
        text += sign + pad(Math.floor(minutes / 60), 2) + ":" + pad(minutes % 60, 2);
      }
      return text;
    }

    toString() {
      return this.toISOString();
    }

    toJSON() {
      return this.toISOString();
    }
  }

  function parseDate(value) {
    if (value instanceof RuleDate) {
      return value;
    }
    if (typeof value !== "string" || value.length < 10) {
      return null;
    }
    var found = ISO.exec(value);
    if (!found) {
      return null;
    }
    var year = +found[1];
    var month = +found[2];
    var day = +found[3];
    if (year < 1 || month < 1 || month > 12 || day < 1 ||
        day > monthLength(year, month)) {
      return null;
    }
    if (found[4] === undefined) {
      return new RuleDate(year, month, day, null);
    }
    var hour = +found[4];
    var minute = +found[5];
    var second = found[6] !== undefined ? +found[6] : 0;
    var micro = found[7] !== undefined ? +(found[7] + "00000").slice(0, 6) : 0;
    if (hour > 23 || minute > 59 || second > 59) {
      return null;
    }
    var offset = null;
    if (found[8] === "Z") {
      offset = 0;
    } else if (found[8] !== undefined) {
      // +02:00, +0200 or +02, as the server reads an offset.
      var digits = found[8].slice(1).replace(":", "");
      var hours = +digits.slice(0, 2);
      var minutes = +digits.slice(2, 4);
      if (hours > 23 || minutes > 59) {
        return null;
      }
      offset = (found[8][0] === "-" ? -1 : 1) * (hours * 60 + minutes);
      if (offset === 0) {
        offset = 0;
      }
    }
    return new RuleDate(year, month, day, {
      hour: hour, minute: minute, second: second, micro: micro, offset: offset,
    });
  }

  // The moment a date or datetime starts, as [seconds, microseconds] in UTC.
  function instant(value) {
    var seconds = dayNumber(value.year, value.month, value.day) * 86400;
    var time = value.time;
    if (time === null) {
      return [seconds, 0];
    }
    seconds += time.hour * 3600 + time.minute * 60 + time.second;
    if (time.offset !== null) {
      seconds -= time.offset * 60;
    }
    return [seconds, time.micro];
  }

  function compareInstants(left, right) {
    if (left[0] !== right[0]) {
      return left[0] < right[0] ? -1 : 1;
    }
    return left[1] < right[1] ? -1 : left[1] > right[1] ? 1 : 0;
  }

  function withDay(value, year, month, day) {
    if (year < 1 || year > 9999) {
      return null;
    }
    return new RuleDate(year, month, day, value.time);
  }

  function addMonths(value, months) {
    var index = value.year * 12 + (value.month - 1) + months;
    var year = Math.floor(index / 12);
    var month = index - year * 12 + 1;
    if (year < 1 || year > 9999) {
      return null;
    }
    return withDay(value, year, month, Math.min(value.day, monthLength(year, month)));
  }

  function addToDate(value, amount, unit) {
    if (unit === "days") {
      if (Math.abs(amount) > MAX_DAYS) {
        return null;
      }
      var moved = fromDayNumber(dayNumber(value.year, value.month, value.day) + amount);
      return withDay(value, moved[0], moved[1], moved[2]);
    }
    var months = unit === "months" ? amount : amount * 12;
    if (!Number.isSafeInteger(months)) {
      return null;
    }
    return addMonths(value, months);
  }

  function compareCalendar(left, right) {
    var a = dayNumber(left.year, left.month, left.day);
    var b = dayNumber(right.year, right.month, right.day);
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function dateDifference(start, end, unit) {
    if (unit === "days") {
      return dayNumber(end.year, end.month, end.day) -
        dayNumber(start.year, start.month, start.day);
    }
    var months = (end.year - start.year) * 12 + (end.month - start.month);
    if (months > 0 && compareCalendar(addMonths(start, months), end) > 0) {
      months -= 1;
    } else if (months < 0 && compareCalendar(addMonths(start, months), end) < 0) {
      months += 1;
    }
    return unit === "years" ? Math.trunc(months / 12) : months;
  }

  function systemNow() {
    var now = new Date();
    return new RuleDate(now.getUTCFullYear(), now.getUTCMonth() + 1, now.getUTCDate(), {
      hour: now.getUTCHours(),
      minute: now.getUTCMinutes(),
      second: now.getUTCSeconds(),
      micro: now.getUTCMilliseconds() * 1000,
      offset: 0,
    });
  }

  // -- values -------------------------------------------------------------------------

  function isNumber(value) {
    return typeof value === "number" || value instanceof Decimal;
  }

  function isMapping(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value) &&
      !(value instanceof Decimal) && !(value instanceof RuleDate);
  }

  function isPlainObject(value) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return false;
    }
    // Any realm's Object.prototype (a page's frames each have one) has no
    // prototype of its own.
    var proto = Object.getPrototypeOf(value);
    return proto === null || Object.getPrototypeOf(proto) === null;
  }

  function isOperation(node) {
    if (!isPlainObject(node)) {
      return false;
    }
    var count = 0;
    for (var key in node) {
      if (hasOwn.call(node, key) && ++count > 1) {
        return false;
      }
    }
    return count === 1;
  }

  /** JSON Logic truthiness: JavaScript's, except that an empty list is false. */
  function truthy(value) {
    if (value === null || value === undefined || value === false) {
      return false;
    }
    if (value === true) {
      return true;
    }
    if (typeof value === "string" || Array.isArray(value)) {
      return value.length > 0;
    }
    if (typeof value === "number") {
      return value === value && value !== 0;
    }
    if (value instanceof Decimal) {
      return !value.isZero();
    }
    return true;
  }

  /** The one meaning of "no value": null, empty text or an empty list. */
  function isBlank(value) {
    if (value === null || value === undefined) {
      return true;
    }
    if (typeof value === "string" || Array.isArray(value)) {
      return value.length === 0;
    }
    return false;
  }

  // The characters Python's str.strip() removes (str.isspace()).
  var PY_SPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003" +
    "\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

  function pyStrip(text) {
    var start = 0;
    var end = text.length;
    while (start < end && PY_SPACE.indexOf(text[start]) >= 0) {
      start += 1;
    }
    while (end > start && PY_SPACE.indexOf(text[end - 1]) >= 0) {
      end -= 1;
    }
    return text.slice(start, end);
  }

  var NUMERIC_TEXT = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
  var MAX_NUMERAL = 400;

  function typeName(value) {
    if (value === null || value === undefined) {
      return "null";
    }
    if (typeof value === "boolean") {
      return "a boolean";
    }
    if (isNumber(value)) {
      return "a number";
    }
    if (typeof value === "string") {
      return "text";
    }
    if (Array.isArray(value)) {
      return "a list";
    }
    if (value instanceof RuleDate) {
      return "a date";
    }
    return "an object";
  }

  /** JavaScript's Number(value), failing where it would give NaN (as Python). */
  function toNumber(value) {
    if (typeof value === "number") {
      if (isFinite(value)) {
        return value;
      }
      throw nan("The number is not finite.");
    }
    if (value === null || value === undefined) {
      return 0;
    }
    if (typeof value === "boolean") {
      return value ? 1 : 0;
    }
    if (typeof value === "string") {
      var text = pyStrip(value);
      if (!text) {
        return 0;
      }
      if (text.length > MAX_NUMERAL || !NUMERIC_TEXT.test(text)) {
        throw nan(JSON.stringify(text.slice(0, 40)) + " is not a number.");
      }
      var number = Number(text);
      if (!isFinite(number)) {
        throw nan(JSON.stringify(text.slice(0, 40)) + " is too large.");
      }
      return number;
    }
    if (value instanceof Decimal) {
      return value;
    }
    throw nan(typeName(value) + " has no numeric value.");
  }

  /** JavaScript's text for a number: 2, 0.5, 1e-7, 1e+21. */
  function numberText(value) {
    if (value instanceof Decimal) {
      return decimalText(value);
    }
    return String(value);
  }

  /** JavaScript's String(value), except that null is empty text. */
  function toText(value) {
    if (typeof value === "string") {
      return value;
    }
    if (value === null || value === undefined) {
      return "";
    }
    if (value === true) {
      return "true";
    }
    if (value === false) {
      return "false";
    }
    if (isNumber(value)) {
      return numberText(value);
    }
    if (value instanceof RuleDate) {
      return value.toISOString();
    }
    if (Array.isArray(value)) {
      return listText(value);
    }
    return "[object Object]";
  }

  // The longest text and list an operation makes, as on the server.
  var MAX_TEXT = 1000000;
  var MAX_ITEMS = 100000;

  // A list's text, failing once it grows past MAX_TEXT characters, before a list
  // of long texts takes the memory. A character is a code point, as Python
  // counts it: more UTF-16 units than twice the limit are surely too many.
  function listText(items) {
    var texts = [];
    var units = -1;
    for (var index = 0; index < items.length; index += 1) {
      var text = toText(items[index]);
      units += text.length + 1;
      if (units > 2 * MAX_TEXT) {
        throw listTooLong();
      }
      texts.push(text);
    }
    var joined = texts.join(",");
    if (units > MAX_TEXT && textLength(joined) > MAX_TEXT) {
      throw listTooLong();
    }
    return joined;
  }

  function listTooLong() {
    return invalidArguments("A list would make a text over 1,000,000 characters.");
  }

  // Python's repr() of a float: fixed between 1e-4 and 1e16, else scientific.
  function pyFloatRepr(number) {
    if (Number.isInteger(number) && Math.abs(number) < 1e16) {
      return String(number) + ".0";
    }
    var text = number.toExponential();
    var mark = text.indexOf("e");
    var mantissa = text.slice(0, mark);
    var exponent = parseInt(text.slice(mark + 1), 10);
    if (exponent >= -4 && exponent < 16) {
      return String(number);
    }
    var sign = exponent < 0 ? "-" : "+";
    return mantissa + "e" + sign + pad(Math.abs(exponent), 2);
  }

  var NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

  function pyStringRepr(text) {
    var quote = text.indexOf("'") >= 0 && text.indexOf('"') < 0 ? '"' : "'";
    var out = quote;
    for (var char of text) {
      var point = char.codePointAt(0);
      if (char === quote || char === "\\") {
        out += "\\" + char;
      } else if (char === "\n") {
        out += "\\n";
      } else if (char === "\r") {
        out += "\\r";
      } else if (char === "\t") {
        out += "\\t";
      } else if (char !== " " && NOT_PRINTABLE.test(char)) {
        out += point < 0x100 ? "\\x" + pad(point.toString(16), 2)
          : point < 0x10000 ? "\\u" + pad(point.toString(16), 4)
          : "\\U" + pad(point.toString(16), 8);
      } else {
        out += char;
      }
    }
    return out + quote;
  }

  function pyRepr(value) {
    if (typeof value === "string") {
      return pyStringRepr(value);
    }
    if (value instanceof Decimal) {
      return "Decimal('" + value.toString() + "')";
    }
    if (Array.isArray(value)) {
      return "[" + value.map(pyRepr).join(", ") + "]";
    }
    if (isMapping(value)) {
      return "{" + Object.keys(value).map(function (key) {
        return pyStringRepr(key) + ": " + pyRepr(value[key]);
      }).join(", ") + "}";
    }
    return pyStr(value);
  }

  /**
   * Python's str(value), for the rare keys that are not text. Numbers that are
   * whole read as integers: JSON text has no other way to tell 1 from 1.0 here.
   */
  function pyStr(value) {
    if (value === null || value === undefined) {
      return "None";
    }
    if (value === true) {
      return "True";
    }
    if (value === false) {
      return "False";
    }
    if (typeof value === "number") {
      return Number.isInteger(value) ? BigInt(value).toString() : pyFloatRepr(value);
    }
    if (typeof value === "string") {
      return value;
    }
    if (value instanceof Decimal) {
      return value.toString();
    }
    if (value instanceof RuleDate) {
      return value.toISOString().replace("T", " ");
    }
    return pyRepr(value);
  }

  // Python orders text by code point; JavaScript's < by UTF-16 unit.
  function compareText(left, right) {
    if (left === right) {
      return 0;
    }
    var length = Math.min(left.length, right.length);
    var index = 0;
    while (index < length && left.charCodeAt(index) === right.charCodeAt(index)) {
      index += 1;
    }
    if (index === length) {
      return left.length < right.length ? -1 : 1;
    }
    if (index > 0 && isHighSurrogate(left.charCodeAt(index - 1)) &&
        (isLowSurrogate(left.charCodeAt(index)) ||
         isLowSurrogate(right.charCodeAt(index)))) {
      index -= 1;
    }
    return left.codePointAt(index) < right.codePointAt(index) ? -1 : 1;
  }

  function isHighSurrogate(unit) {
    return unit >= 0xd800 && unit <= 0xdbff;
  }

  function isLowSurrogate(unit) {
    return unit >= 0xdc00 && unit <= 0xdfff;
  }

  var HAS_SURROGATE = /[\ud800-\udfff]/;

  function codePoints(text) {
    return HAS_SURROGATE.test(text) ? Array.from(text) : null;
  }

  function textLength(text) {
    var points = codePoints(text);
    return points ? points.length : text.length;
  }

  function compareNumbers(left, right) {
    if (typeof left === "number" && typeof right === "number") {
      return left < right ? -1 : left > right ? 1 : 0;
    }
    return decimalCompare(asDecimal(left), asDecimal(right));
  }

  // Both values as moments when one is a date object or both are ISO text.
  function temporalPair(left, right) {
    var leftIsObject = left instanceof RuleDate;
    var rightIsObject = right instanceof RuleDate;
    if (!leftIsObject && !rightIsObject) {
      if (typeof left === "string" && typeof right === "string") {
        var first = parseDate(left);
        var second = first !== null ? parseDate(right) : null;
        if (first !== null && second !== null) {
          return [instant(first), instant(second)];
        }
      }
      return null;
    }
    var a = parseDate(left);
    var b = parseDate(right);
    if (a === null || b === null) {
      throw nan(typeName(left) + " and " + typeName(right) + " do not compare as dates.");
    }
    return [instant(a), instant(b)];
  }

  /** The order of two operands of < > <= >= ==: -1, 0 or 1; fails without one. */
  function order(left, right) {
    var temporal = temporalPair(left, right);
    if (temporal !== null) {
      return compareInstants(temporal[0], temporal[1]);
    }
    if (typeof left === "string" && typeof right === "string") {
      return compareText(left, right);
    }
    if (Array.isArray(left) || isMapping(left) || Array.isArray(right) ||
        isMapping(right)) {
      throw nan(typeName(left) + " and " + typeName(right) + " do not compare.");
    }
    return compareNumbers(toNumber(left), toNumber(right));
  }

  /** JSON Logic ==: JavaScript's loose equality without its traps. */
  function looseEqual(left, right) {
    if (left === null || left === undefined || right === null || right === undefined) {
      return (left === null || left === undefined) &&
        (right === null || right === undefined);
    }
    if (typeof left === "string" && typeof right === "string") {
      if (left.length >= 10 && left[4] === "-" && left[7] === "-") {
        return order(left, right) === 0;
      }
      return left === right;
    }
    if (typeof left === "number" && typeof right === "number") {
      return left === right;
    }
    return order(left, right) === 0;
  }

  /** JSON Logic ===: same kind of value and same value, nothing converted. */
  function strictEqual(left, right) {
    if (left === null || left === undefined || right === null || right === undefined) {
      return (left === null || left === undefined) &&
        (right === null || right === undefined);
    }
    if (typeof left === "boolean" || typeof right === "boolean") {
      return left === right;
    }
    if (isNumber(left)) {
      return isNumber(right) && compareNumbers(left, right) === 0;
    }
    if (typeof left === "string" || typeof right === "string") {
      return left === right;
    }
    if (Array.isArray(left)) {
      if (!Array.isArray(right) || left.length !== right.length) {
        return false;
      }
      for (var index = 0; index < left.length; index++) {
        if (!strictEqual(left[index], right[index])) {
          return false;
        }
      }
      return true;
    }
    if (left instanceof RuleDate || right instanceof RuleDate) {
      if (!(left instanceof RuleDate && right instanceof RuleDate) ||
          left.isDateTime !== right.isDateTime) {
        return false;
      }
      return compareInstants(instant(left), instant(right)) === 0;
    }
    if (isMapping(left)) {
      if (!isMapping(right)) {
        return false;
      }
      var keys = Object.keys(left);
      if (keys.length !== Object.keys(right).length) {
        return false;
      }
      return keys.every(function (key) {
        return hasOwn.call(right, key) && strictEqual(left[key], right[key]);
      });
    }
    return false;
  }

  /** Whether a field kept its value, for changed. */
  function sameValue(left, right) {
    if (isBlank(left) || isBlank(right)) {
      return isBlank(left) && isBlank(right);
    }
    if (left instanceof RuleDate || right instanceof RuleDate) {
      var first = parseDate(left);
      var second = parseDate(right);
      if (first !== null && second !== null) {
        return compareInstants(instant(first), instant(second)) === 0;
      }
    }
    return strictEqual(left, right);
  }

  // -- reading the record -------------------------------------------------------------

  function varKeys(path) {
    if (path === null || path === undefined || path === "" ||
        (Array.isArray(path) && path.length === 0)) {
      return [];
    }
    if (typeof path === "boolean") {
      return [path ? "true" : "false"];
    }
    if (isNumber(path)) {
      return numberText(path).split(".");
    }
    if (typeof path === "string") {
      return path.split(".");
    }
    return [pyStr(path)];
  }

  function listIndex(key) {
    if (typeof key === "number") {
      return Number.isInteger(key) && key >= 0 ? key : null;
    }
    if (typeof key === "string" && /^[0-9]+$/.test(key)) {
      return Number(key);
    }
    return null;
  }

  function mappingKey(key) {
    if (typeof key === "string") {
      return key;
    }
    if (typeof key === "number") {
      return numberText(key);
    }
    return pyStr(key);
  }

  /** One key down: an object's entry or a list's item; null when absent. */
  function step(container, key) {
    if (Array.isArray(container)) {
      var index = listIndex(key);
      if (index !== null && index < container.length) {
        var item = container[index];
        return item === undefined ? null : item;
      }
      return null;
    }
    if (isMapping(container)) {
      var name = mappingKey(key);
      if (hasOwn.call(container, name)) {
        var value = container[name];
        return value === undefined ? null : value;
      }
    }
    return null;
  }

  function hasKey(container, key) {
    if (isMapping(container)) {
      return hasOwn.call(container, mappingKey(key));
    }
    if (Array.isArray(container)) {
      var index = listIndex(key);
      return index !== null && index < container.length;
    }
    return false;
  }

  function walk(data, keys) {
    for (var index = 0; index < keys.length; index++) {
      if (data === null || data === undefined) {
        return null;
      }
      data = step(data, keys[index]);
    }
    return data === undefined ? null : data;
  }

  // Scopes link as [meta, outerData, outerScope]; null at the top.
  function rootOf(data, scope) {
    while (scope !== null) {
      data = scope[1];
      scope = scope[2];
    }
    return data;
  }

  function scopeAt(data, scope, levels) {
    for (var level = 1; level <= levels; level++) {
      if (scope === null) {
        return data;
      }
      if (level % 2) {
        if (level === levels) {
          return scope[0];
        }
        continue;
      }
      data = scope[1];
      scope = scope[2];
    }
    return data;
  }

  // -- matches: a linear-time matcher -------------------------------------------------
  //
  // The same automaton as tailorcrm/rules_engine/_regex.py, so that a pattern is
  // accepted or refused alike and a text matches alike: the pattern compiles to a
  // Thompson automaton run as a lazily built DFA, every character looked at once.
  // A state is a BigInt mask of steps; building the states a search reaches may
  // follow at most MAX_SEARCH_STEPS steps that read nothing, counted as Python
  // counts them, so that the same searches are refused on both sides.

  var MAX_PATTERN_LENGTH = 500;
  var MAX_TEXT_LENGTH = 32000;
  var MAX_PROGRAM_SIZE = 2000;
  var MAX_REPEAT = 1000;
  var MAX_SEARCH_STEPS = 500000;
  var MAX_CACHED_STATES = 512;
  var MAX_CODE_POINT = 0x10ffff;

  var DIGITS = [[0x30, 0x39]];
  var WORD = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];
  var SPACE = [
    [0x09, 0x0d], [0x20, 0x20], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a],
    [0x2028, 0x2029], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000],
    [0xfeff, 0xfeff],
  ];
  var LINE_ENDS = [[0x0a, 0x0a], [0x0d, 0x0d], [0x2028, 0x2029]];
  var CONTROL_ESCAPES = { n: 10, r: 13, t: 9, f: 12, v: 11, "0": 0 };
  // Python's str.isdigit() and str.isalnum(), for the escapes they refuse.
  var PY_DIGIT = /[\p{Nd}\u00b2\u00b3\u00b9\u1369-\u1371\u19da\u2070\u2074-\u2079\u2080-\u2089\u2460-\u2468\u2474-\u247c\u2488-\u2490\u24ea\u24f5-\u24fd\u24ff\u2776-\u277e\u2780-\u2788\u278a-\u2792]/u;
  var PY_ALNUM = /[\p{L}\p{N}]/u;
  var PY_IDENTIFIER = /^[\p{XID_Start}_]\p{XID_Continue}*$/u;

  class PatternError extends Error {}

  function normalizeRanges(ranges) {
    var sorted = ranges.slice().sort(function (a, b) {
      return a[0] - b[0] || a[1] - b[1];
    });
    var merged = [];
    sorted.forEach(function (range) {
      var last = merged[merged.length - 1];
      if (last && range[0] <= last[1] + 1) {
        last[1] = Math.max(last[1], range[1]);
      } else {
        merged.push([range[0], range[1]]);
      }
    });
    return merged;
  }

  function complementRanges(ranges) {
    var result = [];
    var start = 0;
    ranges.forEach(function (range) {
      if (range[0] > start) {
        result.push([start, range[0] - 1]);
      }
      start = range[1] + 1;
    });
    if (start <= MAX_CODE_POINT) {
      result.push([start, MAX_CODE_POINT]);
    }
    return result;
  }

  var ANY_BUT_LINE_END = complementRanges(normalizeRanges(LINE_ENDS));

  function single(char) {
    var point = char.codePointAt(0);
    return [[point, point]];
  }

  class PatternParser {
    constructor(source) {
      this.chars = Array.from(source);
      this.pos = 0;
    }

    fail(message) {
      return new PatternError(message + " (at position " + this.pos + " of the pattern).");
    }

    peek() {
      return this.pos < this.chars.length ? this.chars[this.pos] : null;
    }

    at(index) {
      return index < this.chars.length ? this.chars[index] : "";
    }

    find(char, from) {
      for (var index = from; index < this.chars.length; index++) {
        if (this.chars[index] === char) {
          return index;
        }
      }
      return -1;
    }

    parse() {
      var node = this.alternation();
      if (this.pos < this.chars.length) {
        throw this.fail("Unmatched ')'");
      }
      return node;
    }

    alternation() {
      var branches = [this.sequence()];
      while (this.peek() === "|") {
        this.pos += 1;
        branches.push(this.sequence());
      }
      return branches.length === 1 ? branches[0] : { kind: "alt", items: branches };
    }

    sequence() {
      var items = [];
      var char;
      while ((char = this.peek()) !== null && char !== "|" && char !== ")") {
        items.push(this.quantified());
      }
      return { kind: "cat", items: items };
    }

    quantified() {
      var atom = this.atom();
      var bounds = this.quantifier();
      if (bounds === null) {
        return atom;
      }
      if (atom.kind === "assert") {
        throw this.fail("Nothing to repeat");
      }
      if (this.peek() === "?") {
        this.pos += 1;
      }
      var next = this.peek();
      if (next === "*" || next === "+" || next === "?" || this.quantifierAhead()) {
        throw this.fail("Nothing to repeat");
      }
      return { kind: "repeat", node: atom, low: bounds[0], high: bounds[1] };
    }

    quantifierAhead() {
      var start = this.pos;
      var found = this.quantifier() !== null;
      this.pos = start;
      return found;
    }

    quantifier() {
      var char = this.peek();
      if (char === "*") {
        this.pos += 1;
        return [0, null];
      }
      if (char === "+") {
        this.pos += 1;
        return [1, null];
      }
      if (char === "?") {
        this.pos += 1;
        return [0, 1];
      }
      if (char !== "{") {
        return null;
      }
      var end = this.find("}", this.pos);
      var body = end > 0 ? this.chars.slice(this.pos + 1, end).join("") : "";
      var comma = body.indexOf(",");
      var lowText = comma < 0 ? body : body.slice(0, comma);
      var highText = comma < 0 ? "" : body.slice(comma + 1);
      // A brace that starts no quantifier is a literal, as in JavaScript.
      if (!/^[0-9]+$/.test(lowText) || (highText && !/^[0-9]+$/.test(highText))) {
        return null;
      }
      var low = parseInt(lowText, 10);
      var high = highText ? parseInt(highText, 10) : comma >= 0 ? null : low;
      if (low > MAX_REPEAT || (high !== null && (high > MAX_REPEAT || high < low))) {
        throw this.fail("Repeat counts must be in order and at most " + MAX_REPEAT);
      }
      this.pos = end + 1;
      return [low, high];
    }

    atom() {
      var char = this.chars[this.pos];
      this.pos += 1;
      if (char === "(") {
        return this.group();
      }
      if (char === "*" || char === "+" || char === "?") {
        throw this.fail("Nothing to repeat");
      }
      if (char === "^" || char === "$") {
        return { kind: "assert", test: char };
      }
      if (char === ".") {
        return { kind: "set", ranges: ANY_BUT_LINE_END };
      }
      if (char === "[") {
        return { kind: "set", ranges: this.charClass() };
      }
      if (char === "\\") {
        return this.escape();
      }
      return { kind: "set", ranges: single(char) };
    }

    group() {
      if (this.peek() === "?") {
        if (this.at(this.pos + 1) === ":") {
          this.pos += 2;
        } else if (this.at(this.pos + 1) === "<" && this.at(this.pos + 2) !== "=" &&
                   this.at(this.pos + 2) !== "!") {
          var end = this.find(">", this.pos);
          var name = end < 0 ? "" : this.chars.slice(this.pos + 2, end).join("");
          if (end < 0 || !PY_IDENTIFIER.test(name)) {
            throw this.fail("Invalid group name");
          }
          this.pos = end + 1;
        } else {
          throw this.fail("Lookarounds and inline flags are not supported");
        }
      }
      var node = this.alternation();
      if (this.peek() !== ")") {
        throw this.fail("Missing ')'");
      }
      this.pos += 1;
      return node;
    }

    escape() {
      if (this.pos >= this.chars.length) {
        throw this.fail("The pattern ends with '\\'");
      }
      var char = this.chars[this.pos];
      if (char === "b" || char === "B") {
        this.pos += 1;
        return { kind: "assert", test: char };
      }
      return { kind: "set", ranges: normalizeRanges(this.escapeRanges(false)) };
    }

    escapeRanges(inClass) {
      var char = this.chars[this.pos];
      this.pos += 1;
      var lower = char.toLowerCase();
      var classes = { d: DIGITS, w: WORD, s: SPACE };
      if (lower.length === 1 && hasOwn.call(classes, lower) && char.length === 1) {
        var ranges = classes[lower];
        return char === lower ? ranges.slice() : complementRanges(ranges);
      }
      var point;
      if (hasOwn.call(CONTROL_ESCAPES, char)) {
        if (char === "0" && PY_DIGIT.test(this.peek() || "")) {
          throw this.fail("Octal escapes are not supported");
        }
        point = CONTROL_ESCAPES[char];
      } else if (char === "b" && inClass) {
        point = 0x08;
      } else if (char === "x" || char === "u") {
        var width = char === "x" ? 2 : 4;
        var digits = this.chars.slice(this.pos, this.pos + width).join("");
        if (digits.length !== width || !/^[0-9a-fA-F]+$/.test(digits)) {
          throw this.fail("Invalid \\" + char + " escape");
        }
        this.pos += width;
        point = parseInt(digits, 16);
      } else if (PY_DIGIT.test(char) || char === "k") {
        throw this.fail("Backreferences are not supported");
      } else if (PY_ALNUM.test(char) || char === "_") {
        throw this.fail("Unknown escape \\" + char);
      } else {
        point = char.codePointAt(0);
      }
      return [[point, point]];
    }

    charClass() {
      var negated = this.peek() === "^";
      if (negated) {
        this.pos += 1;
      }
      var ranges = [];
      for (;;) {
        var char = this.peek();
        if (char === null) {
          throw this.fail("Missing ']'");
        }
        if (char === "]") {
          // Also first in the class: "[]" is a class of nothing and "[^]" any
          // character, as in JavaScript.
          this.pos += 1;
          break;
        }
        var low = this.classItem();
        var after = this.at(this.pos + 1);
        if (this.peek() === "-" && after !== "]" && after !== "") {
          this.pos += 1;
          var high = this.classItem();
          if (low.length !== 1 || high.length !== 1 || low[0][0] !== low[0][1]) {
            throw this.fail("Invalid range in a character class");
          }
          if (high[0][0] !== high[0][1] || high[0][0] < low[0][0]) {
            throw this.fail("Range out of order in a character class");
          }
          ranges.push([low[0][0], high[0][0]]);
        } else {
          ranges.push.apply(ranges, low);
        }
      }
      var normalized = normalizeRanges(ranges);
      return negated ? complementRanges(normalized) : normalized;
    }

    classItem() {
      var char = this.chars[this.pos];
      this.pos += 1;
      if (char !== "\\") {
        return single(char);
      }
      if (this.pos >= this.chars.length) {
        throw this.fail("The pattern ends with '\\'");
      }
      return this.escapeRanges(true);
    }
  }

  // Instructions: [CHAR, ranges] [SPLIT, x, y] [JUMP, x] [ASSERT, test] [MATCH]
  var CHAR = 0;
  var SPLIT = 1;
  var JUMP = 2;
  var ASSERT = 3;
  var MATCH = 4;

  class Emitter {
    constructor() {
      this.program = [];
    }

    emit(instruction) {
      if (this.program.length >= MAX_PROGRAM_SIZE) {
        throw new PatternError(
          "The pattern is too large once its repeats are expanded (more than " +
          MAX_PROGRAM_SIZE + " steps)."
        );
      }
      this.program.push(instruction);
      return this.program.length - 1;
    }

    node(node) {
      if (node.kind === "set") {
        this.emit([CHAR, node.ranges]);
      } else if (node.kind === "assert") {
        this.emit([ASSERT, node.test]);
      } else if (node.kind === "cat") {
        node.items.forEach(this.node, this);
      } else if (node.kind === "alt") {
        this.alternatives(node.items);
      } else {
        this.repeat(node.node, node.low, node.high);
      }
    }

    alternatives(branches) {
      var jumps = [];
      for (var index = 0; index < branches.length - 1; index++) {
        var split = this.emit([SPLIT, 0, 0]);
        this.program[split][1] = split + 1;
        this.node(branches[index]);
        jumps.push(this.emit([JUMP, 0]));
        this.program[split][2] = this.program.length;
      }
      this.node(branches[branches.length - 1]);
      jumps.forEach(function (jump) {
        this.program[jump][1] = this.program.length;
      }, this);
    }

    repeat(node, low, high) {
      for (var count = 0; count < low; count++) {
        this.node(node);
      }
      var split;
      if (high === null) {
        split = this.emit([SPLIT, 0, 0]);
        this.program[split][1] = split + 1;
        this.node(node);
        this.emit([JUMP, split]);
        this.program[split][2] = this.program.length;
        return;
      }
      var splits = [];
      for (var extra = 0; extra < high - low; extra++) {
        split = this.emit([SPLIT, 0, 0]);
        this.program[split][1] = split + 1;
        splits.push(split);
        this.node(node);
      }
      splits.forEach(function (index) {
        this.program[index][2] = this.program.length;
      }, this);
    }
  }

  function isWordPoint(point) {
    return (point >= 0x30 && point <= 0x39) || (point >= 0x41 && point <= 0x5a) ||
      (point >= 0x61 && point <= 0x7a) || point === 0x5f;
  }

  /** The indexes of the bits set in a BigInt mask, lowest first. */
  function bitIndexes(mask) {
    var digits = mask.toString(2);
    var found = [];
    for (var index = digits.length - 1; index >= 0; index--) {
      if (digits.charCodeAt(index) === 49) {
        found.push(digits.length - 1 - index);
      }
    }
    return found;
  }

  function bit(index) {
    return 1n << BigInt(index);
  }

  /**
   * Where the classes of characters that no step of the program tells apart begin,
   * and for each class the steps that read its characters, as a mask.
   */
  function charClasses(program) {
    var sets = new Map();
    program.forEach(function (step, index) {
      if (step[0] === CHAR) {
        var key = step[1].join(" ");
        var entry = sets.get(key) || { ranges: step[1], steps: 0n };
        entry.steps |= bit(index);
        sets.set(key, entry);
      }
    });
    // Each range switches its steps on where it begins and off after it ends.
    var switches = new Map([[0, 0n]]);
    sets.forEach(function (entry) {
      entry.ranges.forEach(function (range) {
        [range[0], range[1] + 1].forEach(function (point) {
          switches.set(point, (switches.get(point) || 0n) ^ entry.steps);
        });
      });
    });
    var starts = Array.from(switches.keys()).filter(function (point) {
      return point <= MAX_CODE_POINT;
    }).sort(function (a, b) {
      return a - b;
    });
    var steps = 0n;
    var accepts = starts.map(function (point) {
      steps ^= switches.get(point);
      return steps;
    });
    return [starts, accepts];
  }

  /** A compiled pattern; search(text) says whether it occurs in the text. */
  class Pattern {
    constructor(source) {
      if (textLength(source) > MAX_PATTERN_LENGTH) {
        throw new PatternError(
          "The pattern is " + textLength(source) + " characters long; at most " +
          MAX_PATTERN_LENGTH + " are allowed."
        );
      }
      var emitter = new Emitter();
      emitter.node(new PatternParser(source).parse());
      emitter.emit([MATCH]);
      this.program = emitter.program;
      var tests = this.program.filter(function (step) {
        return step[0] === ASSERT;
      }).map(function (step) {
        return step[1];
      });
      this.needsEdges = tests.indexOf("^") >= 0 || tests.indexOf("$") >= 0;
      this.needsWords = tests.indexOf("b") >= 0 || tests.indexOf("B") >= 0;
      var reading = 0n;
      this.program.forEach(function (step, index) {
        if (step[0] === CHAR) {
          reading |= bit(index);
        }
      });
      this.reading = reading;
      this.skipping = (bit(this.program.length) - 1n) ^ reading;
      var classes = charClasses(this.program);
      this.starts = classes[0];
      this.accepts = classes[1];
      this.states = new Map();
    }

    search(text) {
      var points = Array.from(text, function (char) {
        return char.codePointAt(0);
      });
      if (points.length > MAX_TEXT_LENGTH) {
        throw new PatternError("The text is longer than " + MAX_TEXT_LENGTH + " characters.");
      }
      if (this.states.size >= MAX_CACHED_STATES) {
        this.states = new Map();
      }
      return new PatternSearch(this, points).run();
    }

    context(points, position) {
      var context = 0;
      if (this.needsEdges) {
        context |= (position === 0 ? 1 : 0) | (position === points.length ? 2 : 0);
      }
      if (this.needsWords) {
        var before = position > 0 && isWordPoint(points[position - 1]);
        var after = position < points.length && isWordPoint(points[position]);
        context |= (before ? 4 : 0) | (after ? 8 : 0);
      }
      return context;
    }

    accepting(point) {
      var starts = this.starts;
      var low = 0;
      var high = starts.length - 1;
      while (low < high) {
        var middle = (low + high + 1) >> 1;
        if (starts[middle] <= point) {
          low = middle;
        } else {
          high = middle - 1;
        }
      }
      return this.accepts[low];
    }

    state(kernel, context) {
      var key = (kernel << 4n) | BigInt(context);
      var state = this.states.get(key);
      if (state === undefined) {
        state = this.closure(kernel, context);
        if (this.states.size < MAX_CACHED_STATES) {
          this.states.set(key, state);
        }
      }
      return state;
    }

    closure(kernel, context) {
      var program = this.program;
      var chars = kernel & this.reading;
      // Step 0 joins at every position: the pattern may start anywhere.
      var pending = [0].concat(bitIndexes(kernel & this.skipping));
      var seen = new Set();
      var matched = false;
      while (pending.length) {
        var index = pending.pop();
        var step = program[index];
        if (step[0] === CHAR) {
          chars |= bit(index);
          continue;
        }
        if (seen.has(index)) {
          continue;
        }
        seen.add(index);
        if (step[0] === SPLIT) {
          pending.push(step[2], step[1]);
        } else if (step[0] === JUMP) {
          pending.push(step[1]);
        } else if (step[0] === ASSERT) {
          if (holds(step[1], context)) {
            pending.push(index + 1);
          }
        } else {
          matched = true;
        }
      }
      // size: the steps that read nothing which building the state followed,
      // what a search that reaches the state is charged.
      return { chars: chars, matched: matched, size: seen.size };
    }
  }

  /**
   * One search of one text: the states it reached and the steps it spent. A state
   * is charged the first time the search reaches it, whether or not an earlier
   * search left it in the cache, so that a search is refused alike on both sides.
   */
  class PatternSearch {
    constructor(pattern, points) {
      this.pattern = pattern;
      this.points = points;
      this.spent = 0;
      this.visits = new Map();
    }

    run() {
      var pattern = this.pattern;
      var points = this.points;
      var contextual = pattern.needsEdges || pattern.needsWords;
      var visit = this.visit(0n, pattern.context(points, 0));
      var context = 0;
      for (var position = 0; position < points.length; position++) {
        if (visit.state.matched) {
          return true;
        }
        var point = points[position];
        var key = point;
        if (contextual) {
          context = pattern.context(points, position + 1);
          key = point * 16 + context;
        }
        var following = visit.next.get(key);
        if (following === undefined) {
          following = this.visit((visit.state.chars & pattern.accepting(point)) << 1n, context);
          visit.next.set(key, following);
        }
        visit = following;
      }
      return visit.state.matched;
    }

    visit(kernel, context) {
      var key = (kernel << 4n) | BigInt(context);
      var visit = this.visits.get(key);
      if (visit === undefined) {
        var state = this.pattern.state(kernel, context);
        this.spent += state.size;
        if (this.spent > MAX_SEARCH_STEPS) {
          throw new PatternError(
            "The pattern would take more than " + MAX_SEARCH_STEPS +
            " steps to search this text."
          );
        }
        visit = { state: state, next: new Map() };
        this.visits.set(key, visit);
      }
      return visit;
    }
  }

  function holds(test, context) {
    var boundary = Boolean(context & 4) !== Boolean(context & 8);
    if (test === "^") {
      return Boolean(context & 1);
    }
    if (test === "$") {
      return Boolean(context & 2);
    }
    return test === "b" ? boundary : !boundary;
  }

  var patternCache = new Map();

  function cachedPattern(source) {
    var pattern = patternCache.get(source);
    if (pattern !== undefined) {
      patternCache.delete(source);
      patternCache.set(source, pattern);
      return pattern;
    }
    pattern = new Pattern(source);
    patternCache.set(source, pattern);
    if (patternCache.size > 128) {
      patternCache.delete(patternCache.keys().next().value);
    }
    return pattern;
  }

  // -- the operator table --------------------------------------------------------------

  var LIST = "list";
  var SINGLE = "single";
  var SPREAD = "spread";
  var OPERATORS = Object.create(null);

  /** The operands as the compiler hands them to an operator's build function. */
  class Operands {
    constructor(name, raw, fns, dynamic, path) {
      this.name = name;
      this.raw = raw;
      this.fns = fns;
      this.dynamic = dynamic;
      this.path = path;
    }

    operandPath(index) {
      return (this.path ? this.path + "." + this.name : this.name) + "[" + index + "]";
    }

    literal(index) {
      var raw = this.raw;
      if (raw === null || index >= raw.length || isOperation(raw[index])) {
        return [false, null];
      }
      var value = raw[index];
      if (Array.isArray(value)) {
        var plain = !value.some(function (item) {
          return Array.isArray(item) || isPlainObject(item);
        });
        return [plain, value];
      }
      return [true, value];
    }

    fail(message, index, code) {
      var path = index === null ? this.path : this.operandPath(index);
      return new ConditionError(message, path, code);
    }
  }

  function register(name, build, options) {
    options = options || {};
    OPERATORS[name] = {
      name: name,
      build: build,
      form: options.form || SPREAD,
      min: options.min || 0,
      max: options.max === undefined ? null : options.max,
    };
  }

  function eager(impl, operands, min, max) {
    var dynamic = operands.dynamic;
    if (dynamic !== null) {
      var name = operands.name;
      return function (data, scope) {
        var values = dynamic(data, scope);
        values = Array.isArray(values) ? values.slice() : [values];
        if (values.length < min || (max !== null && values.length > max)) {
          throw invalidArguments(name + " got " + values.length + " operands.");
        }
        return impl(values);
      };
    }
    var fns = operands.fns;
    if (fns.length === 0) {
      return function () {
        return impl([]);
      };
    }
    if (fns.length === 1) {
      var only = fns[0];
      return function (data, scope) {
        return impl([only(data, scope)]);
      };
    }
    if (fns.length === 2) {
      var first = fns[0];
      var second = fns[1];
      return function (data, scope) {
        return impl([first(data, scope), second(data, scope)]);
      };
    }
    return function (data, scope) {
      return impl(fns.map(function (fn) {
        return fn(data, scope);
      }));
    };
  }

  function registerEager(name, impl, options) {
    options = options || {};
    var min = options.min || 0;
    var max = options.max === undefined ? null : options.max;
    register(name, function (operands) {
      return eager(impl, operands, min, max);
    }, options);
  }

  // A copy of an object's own entries, each passed through convert. Entries are
  // defined, not assigned, so that a key "__proto__" stays an entry.
  function copyEntries(source, convert) {
    var copy = {};
    Object.keys(source).forEach(function (key) {
      Object.defineProperty(copy, key, {
        value: convert(source[key]),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    });
    return copy;
  }

  function same(value) {
    return value;
  }

  function deepCopy(value) {
    if (Array.isArray(value)) {
      return value.map(deepCopy);
    }
    if (isPlainObject(value)) {
      return copyEntries(value, deepCopy);
    }
    return value;
  }

  function literalCopy(value) {
    if (Array.isArray(value) || isPlainObject(value)) {
      return function () {
        return deepCopy(value);
      };
    }
    return function () {
      return value;
    };
  }

  // -- data access ---------------------------------------------------------------------

  function readVar(data, scope, keys) {
    // Names that start with "$" ($user, $prior, $now) belong to the record being
    // saved, so they read from the top even inside map, filter and the like.
    if (keys.length && keys[0][0] === "$" && scope !== null) {
      data = rootOf(data, scope);
    }
    return walk(data, keys);
  }

  register("var", function (operands) {
    var literal = operands.literal(0);
    var fns = operands.fns;
    var fallback = fns.length > 1 ? fns[1] : null;
    if (operands.raw !== null && (literal[0] || operands.raw.length === 0)) {
      var keys = varKeys(literal[1]);
      if (keys.length === 0) {
        return function (data) {
          return data === undefined ? null : data;
        };
      }
      return function (data, scope) {
        var value = readVar(data, scope, keys);
        return value === null && fallback !== null ? fallback(data, scope) : value;
      };
    }
    return function (data, scope) {
      var path = fns.length ? fns[0](data, scope) : null;
      var value = readVar(data, scope, varKeys(path));
      return value === null && fallback !== null ? fallback(data, scope) : value;
    };
  }, { form: SINGLE, max: 2 });

  function valKeys(path) {
    if (path === null || path === undefined) {
      return [];
    }
    return Array.isArray(path) ? path.slice() : [path];
  }

  function readVal(data, scope, keys) {
    if (keys.length && Array.isArray(keys[0])) {
      var levels = keys[0].length ? keys[0][0] : 0;
      if (typeof levels !== "number") {
        throw invalidArguments("A val scope must be a number of levels.");
      }
      var count = Math.abs(Math.trunc(levels));
      data = scopeAt(data, scope, count);
      keys = keys.slice(1);
    }
    return walk(data, keys);
  }

  register("val", function (operands) {
    var raw = operands.raw;
    if (raw !== null && !raw.some(isOperation)) {
      var keys = raw.slice();
      if (keys.length === 1 && !Array.isArray(keys[0])) {
        keys = valKeys(keys[0]);
      }
      if (keys.length && Array.isArray(keys[0])) {
        return function (data, scope) {
          return readVal(data, scope, keys);
        };
      }
      return function (data) {
        return walk(data, keys);
      };
    }
    var fns = operands.fns;
    return function (data, scope) {
      var values = fns.map(function (fn) {
        return fn(data, scope);
      });
      return readVal(data, scope, values.length === 1 ? valKeys(values[0]) : values);
    };
  }, { form: SINGLE });

  register("exists", function (operands) {
    var fns = operands.fns;
    return function (data, scope) {
      var values = fns.map(function (fn) {
        return fn(data, scope);
      });
      var keys = values.length === 1 ? valKeys(values[0]) : values;
      for (var index = 0; index < keys.length; index++) {
        if (!hasKey(data, keys[index])) {
          return false;
        }
        data = step(data, keys[index]);
      }
      return true;
    };
  }, { form: SINGLE });

  function missingKeys(data, keys) {
    return keys.filter(function (key) {
      return isBlank(walk(data, varKeys(key)));
    });
  }

  function computeAll(fns, data, scope) {
    var values = new Array(fns.length);
    for (var index = 0; index < fns.length; index++) {
      values[index] = fns[index](data, scope);
    }
    return values;
  }

  register("missing", function (operands) {
    var fns = operands.fns;
    var dynamic = operands.dynamic;
    return function (data, scope) {
      var values = dynamic !== null ? dynamic(data, scope) : computeAll(fns, data, scope);
      if (Array.isArray(values) && values.length && Array.isArray(values[0])) {
        values = values[0];
      } else if (!Array.isArray(values)) {
        values = [values];
      }
      return missingKeys(data, values);
    };
  });

  register("missing_some", function (operands) {
    var fns = operands.fns;
    var dynamic = operands.dynamic;
    return function (data, scope) {
      var values;
      if (dynamic !== null) {
        values = dynamic(data, scope);
        if (!Array.isArray(values) || values.length !== 2) {
          throw invalidArguments("missing_some needs [count, keys].");
        }
      } else {
        values = computeAll(fns, data, scope);
      }
      var need = toNumber(values[0]);
      var keys = Array.isArray(values[1]) ? values[1] : [values[1]];
      var absent = missingKeys(data, keys);
      return compareNumbers(keys.length - absent.length, need) >= 0 ? [] : absent;
    };
  }, { min: 2, max: 2 });

  // -- logic ----------------------------------------------------------------------------

  function buildIf(operands) {
    var fns = operands.fns;
    if (fns.length === 0) {
      return function () {
        return null;
      };
    }
    if (fns.length === 1) {
      return fns[0];
    }
    return function (data, scope) {
      var index = 0;
      for (; index + 1 < fns.length; index += 2) {
        if (truthy(fns[index](data, scope))) {
          return fns[index + 1](data, scope);
        }
      }
      return index < fns.length ? fns[index](data, scope) : null;
    };
  }

  register("if", buildIf, { form: LIST });
  register("?:", buildIf, { form: LIST });

  register("and", function (operands) {
    var fns = operands.fns;
    return function (data, scope) {
      // An empty group matches nothing, so a filter built without conditions
      // never selects every record by accident.
      var value = false;
      for (var index = 0; index < fns.length; index++) {
        value = fns[index](data, scope);
        if (!truthy(value)) {
          return value;
        }
      }
      return value;
    };
  }, { form: LIST });

  register("or", function (operands) {
    var fns = operands.fns;
    return function (data, scope) {
      var value = false;
      for (var index = 0; index < fns.length; index++) {
        value = fns[index](data, scope);
        if (truthy(value)) {
          return value;
        }
      }
      return value;
    };
  }, { form: LIST });

  register("!", function (operands) {
    var first = operands.fns[0];
    return first === undefined ? function () {
      return true;
    } : function (data, scope) {
      return !truthy(first(data, scope));
    };
  }, { form: SINGLE });

  register("!!", function (operands) {
    var first = operands.fns[0];
    return first === undefined ? function () {
      return false;
    } : function (data, scope) {
      return truthy(first(data, scope));
    };
  }, { form: SINGLE });

  register("??", function (operands) {
    var fns = operands.fns;
    return function (data, scope) {
      for (var index = 0; index < fns.length; index++) {
        var value = fns[index](data, scope);
        if (value !== null && value !== undefined) {
          return value;
        }
      }
      return null;
    };
  }, { form: LIST });

  register("throw", function (operands) {
    var errorFn = operands.fns[0];
    return function (data, scope) {
      var error = errorFn(data, scope);
      if (isMapping(error) && hasOwn.call(error, "type")) {
        throw new EvaluationError(toText(error.type), "", copyEntries(error, same));
      }
      throw new EvaluationError(toText(error));
    };
  }, { form: SINGLE, min: 1, max: 1 });

  register("try", function (operands) {
    var fns = operands.fns;
    return function (data, scope) {
      var error = null;
      for (var index = 0; index < fns.length; index++) {
        try {
          if (error === null) {
            return fns[index](data, scope);
          }
          // A fallback sees the error as its data, and the outer data two levels
          // up, as inside map.
          return fns[index](error.value, [{}, data, scope]);
        } catch (caught) {
          if (!(caught instanceof EvaluationError)) {
            throw caught;
          }
          error = caught;
        }
      }
      if (error !== null) {
        throw error;
      }
      return null;
    };
  }, { form: SINGLE });

  register("preserve", function (operands) {
    return literalCopy(operands.raw && operands.raw.length ? operands.raw[0] : null);
  }, { form: SINGLE, max: 1 });

  // -- comparisons ----------------------------------------------------------------------

  function registerComparison(name, test) {
    register(name, function (operands) {
      var fns = operands.fns;
      if (fns.length === 2) {
        var left = fns[0];
        var right = fns[1];
        return function (data, scope) {
          return test(left(data, scope), right(data, scope));
        };
      }
      return function (data, scope) {
        var previous = fns[0](data, scope);
        for (var index = 1; index < fns.length; index++) {
          var current = fns[index](data, scope);
          if (!test(previous, current)) {
            return false;
          }
          previous = current;
        }
        return true;
      };
    }, { form: LIST, min: 2 });
  }

  registerComparison("==", looseEqual);
  registerComparison("!=", function (a, b) {
    return !looseEqual(a, b);
  });
  registerComparison("===", strictEqual);
  registerComparison("!==", function (a, b) {
    return !strictEqual(a, b);
  });
  registerComparison("<", function (a, b) {
    return order(a, b) < 0;
  });
  registerComparison("<=", function (a, b) {
    return order(a, b) <= 0;
  });
  registerComparison(">", function (a, b) {
    return order(a, b) > 0;
  });
  registerComparison(">=", function (a, b) {
    return order(a, b) >= 0;
  });

  // -- arithmetic -----------------------------------------------------------------------

  function checkFinite(value) {
    if (typeof value === "number" ? !isFinite(value) : !decimalWithinNumbers(value)) {
      throw nan("The result is too large.");
    }
    return value;
  }

  function add(left, right) {
    if (typeof left === "number" && typeof right === "number") {
      return left + right;
    }
    return decimalAdd(asDecimal(left), asDecimal(right));
  }

  function subtract(left, right) {
    if (typeof left === "number" && typeof right === "number") {
      return left - right;
    }
    return decimalAdd(asDecimal(left), decimalNegate(asDecimal(right)));
  }

  function multiply(left, right) {
    if (typeof left === "number" && typeof right === "number") {
      return left * right;
    }
    return decimalMultiply(asDecimal(left), asDecimal(right));
  }

  function isZeroNumber(value) {
    return value instanceof Decimal ? value.isZero() : value === 0;
  }

  function dividePair(dividend, divisor) {
    if (isZeroNumber(divisor)) {
      throw nan("Division by zero.");
    }
    if (typeof dividend === "number" && typeof divisor === "number") {
      return checkFinite(dividend / divisor);
    }
    return checkFinite(decimalDivide(asDecimal(dividend), asDecimal(divisor)));
  }

  function remainderPair(dividend, divisor) {
    // The remainder takes the sign of the dividend, as in JavaScript.
    if (isZeroNumber(divisor)) {
      throw nan("Remainder of a division by zero.");
    }
    if (typeof dividend === "number" && typeof divisor === "number") {
      return dividend % divisor;
    }
    return decimalRemainder(asDecimal(dividend), asDecimal(divisor));
  }

  registerEager("+", function (values) {
    var total = 0;
    for (var index = 0; index < values.length; index++) {
      total = add(total, toNumber(values[index]));
    }
    return checkFinite(total);
  });

  registerEager("*", function (values) {
    var product = 1;
    for (var index = 0; index < values.length; index++) {
      product = multiply(product, toNumber(values[index]));
    }
    return checkFinite(product);
  });

  registerEager("-", function (values) {
    if (values.length === 1) {
      var number = toNumber(values[0]);
      return number instanceof Decimal ? fix(-number.coef, number.exp) : -number;
    }
    var result = toNumber(values[0]);
    for (var index = 1; index < values.length; index++) {
      result = subtract(result, toNumber(values[index]));
    }
    return checkFinite(result);
  }, { min: 1 });

  registerEager("/", function (values) {
    if (values.length === 1) {
      return dividePair(1, toNumber(values[0]));
    }
    var result = toNumber(values[0]);
    for (var index = 1; index < values.length; index++) {
      result = dividePair(result, toNumber(values[index]));
    }
    return result;
  }, { min: 1 });

  registerEager("%", function (values) {
    var result = toNumber(values[0]);
    for (var index = 1; index < values.length; index++) {
      result = remainderPair(result, toNumber(values[index]));
    }
    return result;
  }, { min: 2 });

  function extreme(pickGreater) {
    return function (values) {
      var best = null;
      for (var index = 0; index < values.length; index++) {
        var number = toNumber(values[index]);
        if (best === null) {
          best = number;
          continue;
        }
        var comparison = compareNumbers(number, best);
        if (pickGreater ? comparison > 0 : comparison < 0) {
          best = number;
        }
      }
      return best;
    };
  }

  registerEager("max", extreme(true));
  registerEager("min", extreme(false));

  // -- text and lists -------------------------------------------------------------------

  function membership(values) {
    if (values.length < 2 || values[0] === null || values[0] === undefined) {
      return false;
    }
    var needle = values[0];
    var haystack = values[1];
    if (typeof haystack === "string") {
      return haystack.indexOf(toText(needle)) >= 0;
    }
    if (Array.isArray(haystack)) {
      return haystack.some(function (item) {
        return strictEqual(needle, item);
      });
    }
    return false;
  }

  function whole(value) {
    var number = toNumber(value);
    return number instanceof Decimal ? decimalTruncate(number) : Math.trunc(number);
  }

  function sliceText(text, start, end) {
    var points = codePoints(text);
    if (points === null) {
      return text.slice(start, end);
    }
    return points.slice(start, end).join("");
  }

  registerEager("in", membership);
  registerEager("cat", function (values) {
    var text = values.map(toText).join("");
    // Characters are counted as Python counts them: one per code point.
    if (text.length > MAX_TEXT && textLength(text) > MAX_TEXT) {
      throw invalidArguments("cat would make a text over 1,000,000 characters.");
    }
    return text;
  });
  registerEager("substr", function (values) {
    var text = values.length ? toText(values[0]) : "";
    var length = textLength(text);
    var start = values.length > 1 ? whole(values[1]) : 0;
    if (start < 0) {
      start = Math.max(length + start, 0);
    }
    start = Math.min(start, length);
    var rest = length - start;
    if (values.length < 3 || values[2] === null || values[2] === undefined) {
      return sliceText(text, start, length);
    }
    var count = whole(values[2]);
    if (count < 0) {
      return sliceText(text, start, start + Math.max(rest + count, 0));
    }
    return sliceText(text, start, start + Math.min(count, rest));
  });
  registerEager("merge", function (values) {
    var merged = [];
    values.forEach(function (value) {
      if (Array.isArray(value)) {
        // One item at a time: spreading a long list as arguments can overflow
        // the call stack.
        for (var index = 0; index < value.length; index += 1) {
          merged.push(value[index]);
        }
      } else {
        merged.push(value);
      }
      if (merged.length > MAX_ITEMS) {
        throw invalidArguments("merge would make a list over 100,000 items.");
      }
    });
    return merged;
  });

  register("log", function (operands) {
    // Rule values can hold personal data; log hands its operand through and
    // writes nothing, as on the server.
    var first = operands.fns[0];
    return first === undefined ? function () {
      return null;
    } : first;
  }, { form: SINGLE, max: 1 });

  // -- iteration ------------------------------------------------------------------------

  function registerIteration(name, build, options) {
    options = options || {};
    var nullExpression = Boolean(options.nullExpression);
    register(name, function (operands) {
      var raw = operands.raw || [];
      if (raw.length && raw[0] === null) {
        throw operands.fail(name + " needs a list to work on, not null.", 0,
          "invalid_arguments");
      }
      if (!nullExpression && raw.length > 1 && raw[1] === null) {
        throw operands.fail(name + " needs an expression, not null.", 1,
          "invalid_arguments");
      }
      return build(operands);
    }, { form: LIST, min: 2, max: options.max || 2 });
  }

  function items(value) {
    return Array.isArray(value) ? value : [];
  }

  registerIteration("map", function (operands) {
    var source = operands.fns[0];
    var expression = operands.fns[1];
    return function (data, scope) {
      return items(source(data, scope)).map(function (item, index) {
        return expression(item, [{ index: index }, data, scope]);
      });
    };
  });

  registerIteration("filter", function (operands) {
    var source = operands.fns[0];
    var predicate = operands.fns[1];
    return function (data, scope) {
      return items(source(data, scope)).filter(function (item, index) {
        return truthy(predicate(item, [{ index: index }, data, scope]));
      });
    };
  });

  registerIteration("reduce", function (operands) {
    var source = operands.fns[0];
    var expression = operands.fns[1];
    var initial = operands.fns.length > 2 ? operands.fns[2] : null;
    return function (data, scope) {
      var accumulator = initial !== null ? initial(data, scope) : null;
      items(source(data, scope)).forEach(function (item, index) {
        var context = { current: item, accumulator: accumulator };
        accumulator = expression(context, [{ index: index }, data, scope]);
      });
      return accumulator;
    };
  }, { max: 3 });

  function registerQuantifier(name, stopOn, found) {
    var empty = name === "none";
    registerIteration(name, function (operands) {
      var source = operands.fns[0];
      var predicate = operands.fns[1];
      return function (data, scope) {
        var list = source(data, scope);
        if (!Array.isArray(list)) {
          throw invalidArguments(name + " needs a list, not " +
            JSON.stringify(toText(list).slice(0, 40)) + ".");
        }
        if (list.length === 0) {
          return empty;
        }
        for (var index = 0; index < list.length; index++) {
          var value = predicate(list[index], [{ index: index }, data, scope]);
          if (truthy(value) === stopOn) {
            return found;
          }
        }
        return !found;
      };
    }, { nullExpression: true });
  }

  // An empty list has no item that passes, so "all" is false for it.
  registerQuantifier("all", false, false);
  registerQuantifier("some", true, true);
  registerQuantifier("none", true, false);

  // -- the CRM operations: the clock -------------------------------------------------------

  function clock(data, scope) {
    var top = rootOf(data, scope);
    if (isMapping(top)) {
      var fixed = parseDate(hasOwn.call(top, "$now") ? top.$now : null);
      if (fixed !== null && fixed.isDateTime) {
        return fixed;
      }
      if (fixed !== null) {
        return new RuleDate(fixed.year, fixed.month, fixed.day, {
          hour: 0, minute: 0, second: 0, micro: 0, offset: 0,
        });
      }
    }
    return systemNow();
  }

  register("today", function () {
    return function (data, scope) {
      var moment = clock(data, scope);
      return new RuleDate(moment.year, moment.month, moment.day, null);
    };
  }, { form: LIST, max: 0 });

  register("now", function () {
    return clock;
  }, { form: LIST, max: 0 });

  // -- dates ----------------------------------------------------------------------------

  function wholeNumber(value) {
    if (value === null || value === undefined || typeof value === "boolean") {
      return null;
    }
    var number;
    try {
      number = toNumber(value);
    } catch (error) {
      if (error instanceof EvaluationError) {
        return null;
      }
      throw error;
    }
    if (number instanceof Decimal) {
      return decimalIsIntegral(number) ? decimalTruncate(number) : null;
    }
    return Number.isInteger(number) ? number : null;
  }

  function checkUnit(operands, index) {
    var literal = operands.literal(index);
    if (literal[0] && UNITS.indexOf(literal[1]) < 0) {
      throw operands.fail(
        "The unit must be one of " + UNITS.join(", ") + ", not " +
        pyRepr(literal[1]) + ".", index, "invalid_unit"
      );
    }
  }

  function isUnit(value) {
    return typeof value === "string" && UNITS.indexOf(value) >= 0;
  }

  register("date_add", function (operands) {
    checkUnit(operands, 2);
    return eager(function (values) {
      var start = parseDate(values[0]);
      var amount = wholeNumber(values[1]);
      if (start === null || amount === null || !isUnit(values[2])) {
        return null;
      }
      return addToDate(start, amount, values[2]);
    }, operands, 3, 3);
  }, { min: 3, max: 3 });

  register("date_diff", function (operands) {
    checkUnit(operands, 2);
    return eager(function (values) {
      var start = parseDate(values[0]);
      var end = parseDate(values[1]);
      var unit = values.length > 2 ? values[2] : "days";
      if (start === null || end === null || !isUnit(unit)) {
        return null;
      }
      return dateDifference(start, end, unit);
    }, operands, 2, 3);
  }, { min: 2, max: 3 });

  // -- text -----------------------------------------------------------------------------

  registerEager("lower", function (values) {
    return typeof values[0] === "string" ? fitting(values[0].toLowerCase(), "lower") : null;
  }, { form: SINGLE, min: 1, max: 1 });

  registerEager("upper", function (values) {
    return typeof values[0] === "string" ? fitting(values[0].toUpperCase(), "upper") : null;
  }, { form: SINGLE, min: 1, max: 1 });

  // A character may change case into more than one ("ß" is "SS"), so a text
  // within the limit can come out past it, as on the server.
  function fitting(text, name) {
    if (text.length > MAX_TEXT && textLength(text) > MAX_TEXT) {
      throw invalidArguments(name + " would make a text over 1,000,000 characters.");
    }
    return text;
  }

  registerEager("length", function (values) {
    var value = values[0];
    if (value === null || value === undefined) {
      return 0;
    }
    if (typeof value === "string") {
      return textLength(value);
    }
    return Array.isArray(value) ? value.length : null;
  }, { form: SINGLE, min: 1, max: 1 });

  registerEager("contains", function (values) {
    return membership([values[1], values[0]]);
  }, { min: 2, max: 2 });

  registerEager("starts_with", function (values) {
    var text = values[0];
    var prefix = values[1];
    if (typeof text !== "string" || prefix === null || prefix === undefined ||
        Array.isArray(prefix) || isMapping(prefix)) {
      return false;
    }
    return text.startsWith(toText(prefix));
  }, { min: 2, max: 2 });

  function match(text, pattern) {
    if (text === null || text === undefined || typeof text === "boolean" ||
        Array.isArray(text) || isMapping(text)) {
      return false;
    }
    try {
      return pattern.search(typeof text === "string" ? text : toText(text));
    } catch (error) {
      if (error instanceof PatternError) {
        return null;
      }
      throw error;
    }
  }

  register("matches", function (operands) {
    var literal = operands.literal(1);
    if (literal[0]) {
      if (typeof literal[1] !== "string") {
        throw operands.fail("The pattern must be text.", 1, "invalid_pattern");
      }
      var pattern;
      try {
        pattern = new Pattern(literal[1]);
      } catch (error) {
        if (error instanceof PatternError) {
          throw operands.fail(error.message, 1, "invalid_pattern");
        }
        throw error;
      }
      var textFn = operands.fns[0];
      return function (data, scope) {
        return match(textFn(data, scope), pattern);
      };
    }
    return eager(function (values) {
      if (typeof values[1] !== "string") {
        return null;
      }
      var compiled;
      try {
        compiled = cachedPattern(values[1]);
      } catch (error) {
        if (error instanceof PatternError) {
          return null;
        }
        throw error;
      }
      return match(values[0], compiled);
    }, operands, 2, 2);
  }, { min: 2, max: 2 });

  // -- blanks, prior values, coalesce ------------------------------------------------------

  registerEager("is_blank", function (values) {
    return isBlank(values[0]);
  }, { form: SINGLE, min: 1, max: 1 });

  function priorAndCurrent(data, scope, name) {
    var top = rootOf(data, scope);
    var prior = isMapping(top) && hasOwn.call(top, "$prior") ? top.$prior : null;
    if (!isMapping(prior) || typeof name !== "string") {
      return [false, null, null];
    }
    var keys = varKeys(name);
    return [true, walk(prior, keys), walk(top, keys)];
  }

  register("changed", function (operands) {
    var nameFn = operands.fns[0];
    return function (data, scope) {
      var found = priorAndCurrent(data, scope, nameFn(data, scope));
      return found[0] && !sameValue(found[1], found[2]);
    };
  }, { form: SINGLE, min: 1, max: 1 });

  register("prior", function (operands) {
    var nameFn = operands.fns[0];
    return function (data, scope) {
      return priorAndCurrent(data, scope, nameFn(data, scope))[1];
    };
  }, { form: SINGLE, min: 1, max: 1 });

  register("coalesce", function (operands) {
    var fns = operands.fns;
    return function (data, scope) {
      for (var index = 0; index < fns.length; index++) {
        var value;
        try {
          value = fns[index](data, scope);
        } catch (error) {
          // A failed operand counts as no value.
          if (error instanceof EvaluationError) {
            continue;
          }
          throw error;
        }
        if (!isBlank(value)) {
          return value;
        }
      }
      return null;
    };
  }, { form: LIST });

  // -- round ----------------------------------------------------------------------------

  var MAX_ROUND_DIGITS = 20;

  registerEager("round", function (values) {
    var value = values[0];
    var places = values.length > 1 ? wholeNumber(values[1]) : 0;
    if (value === null || value === undefined || Array.isArray(value) ||
        isMapping(value) || places === null || Math.abs(places) > MAX_ROUND_DIGITS) {
      return null;
    }
    var number;
    try {
      number = toNumber(value);
    } catch (error) {
      if (error instanceof EvaluationError) {
        return null;
      }
      throw error;
    }
    var rounded = decimalRoundHalfUp(asDecimal(number), places);
    if (rounded === null) {
      return null;
    }
    return number instanceof Decimal ? rounded : Number(rounded.toString());
  }, { min: 1, max: 2 });

  // -- the compiler ---------------------------------------------------------------------

  function utf8Length(text) {
    var bytes = 0;
    for (var index = 0; index < text.length; index++) {
      var unit = text.charCodeAt(index);
      if (unit < 0x80) {
        bytes += 1;
      } else if (unit < 0x800) {
        bytes += 2;
      } else if (isHighSurrogate(unit) && isLowSurrogate(text.charCodeAt(index + 1))) {
        bytes += 4;
        index += 1;
      } else {
        bytes += 3;
      }
    }
    return bytes;
  }

  function conditionSize(condition) {
    var text;
    try {
      text = JSON.stringify(condition === undefined ? null : condition);
    } catch (error) {
      throw new ConditionError("The condition is not a JSON document.", "",
        "invalid_arguments");
    }
    return utf8Length(text);
  }

  function constant(value) {
    return function () {
      return value;
    };
  }

  function compileNode(node, path, depth) {
    if (!Array.isArray(node) && !isPlainObject(node)) {
      return constant(node === undefined ? null : node);
    }
    depth += 1;
    if (depth > MAX_DEPTH) {
      throw new ConditionError("The condition nests deeper than " + MAX_DEPTH +
        " levels.", path, "too_deep");
    }
    if (Array.isArray(node)) {
      return compileList(node, path, depth);
    }
    var keys = Object.keys(node);
    if (keys.length !== 1) {
      // An object with no key or several is a value, not an operation.
      return literalCopy(node);
    }
    return compileOperation(keys[0], node[keys[0]], path, depth);
  }

  function isScalar(value) {
    return value === null || typeof value !== "object";
  }

  function compileList(node, path, depth) {
    if (node.every(isScalar)) {
      var values = node.slice();
      return function () {
        return values.slice();
      };
    }
    var fns = node.map(function (item, index) {
      return compileNode(item, path + "[" + index + "]", depth);
    });
    return function (data, scope) {
      return computeAll(fns, data, scope);
    };
  }

  function checkCount(operator, count, path) {
    var low = operator.min;
    var high = operator.max;
    if (low <= count && (high === null || count <= high)) {
      return;
    }
    throw new ConditionError(operator.name + " takes " + arityText(low, high) +
      ", not " + count + ".", path, "invalid_arguments");
  }

  function arityText(low, high) {
    var plural = function (n) {
      return n + " operand" + (n !== 1 ? "s" : "");
    };
    if (high === null) {
      return "at least " + plural(low);
    }
    return low === high ? plural(low) : low + " to " + high + " operands";
  }

  function compileOperation(name, operand, path, depth) {
    var operator = OPERATORS[name];
    if (operator === undefined) {
      throw new ConditionError("Unknown operator " + pyRepr(name) + ".", path,
        "unknown_operator");
    }
    var prefix = path ? path + "." + name : name;
    if (name === "preserve") {
      return operator.build(new Operands(name, [operand], [], null, path));
    }
    if (!Array.isArray(operand)) {
      if (operator.form === LIST) {
        throw new ConditionError(name + " needs a list of operands.", path,
          "invalid_arguments");
      }
      if (operator.form !== SINGLE && isOperation(operand)) {
        var dynamic = compileNode(operand, prefix, depth);
        return operator.build(new Operands(name, null, [], dynamic, path));
      }
      checkCount(operator, 1, path);
      var only = [compileNode(operand, prefix, depth)];
      return operator.build(new Operands(name, [operand], only, null, path));
    }
    checkCount(operator, operand.length, path);
    var fns = operand.map(function (item, index) {
      return compileNode(item, prefix + "[" + index + "]", depth);
    });
    return operator.build(new Operands(name, operand, fns, null, path));
  }

  // Results leave with dates as ISO text; everything else as it is.
  function exportValue(value) {
    if (value instanceof RuleDate) {
      return value.toISOString();
    }
    if (value === undefined) {
      return null;
    }
    if (Array.isArray(value)) {
      var copy = null;
      for (var index = 0; index < value.length; index++) {
        var item = exportValue(value[index]);
        if (item !== value[index] && copy === null) {
          copy = value.slice(0, index);
        }
        if (copy !== null) {
          copy.push(item);
        }
      }
      return copy === null ? value : copy;
    }
    if (isPlainObject(value)) {
      var changed = Object.keys(value).some(function (key) {
        return exportValue(value[key]) !== value[key];
      });
      return changed ? copyEntries(value, exportValue) : value;
    }
    return value;
  }

  /**
   * Compile a condition once into a function (data) -> value.
   *
   * By default a failure anywhere (a division by zero, text where a number belongs,
   * a throw) makes the result null; with {strict: true} it is thrown as an
   * EvaluationError whose type is the JSON Logic community's error type. A
   * condition that is wrong whatever the data throws a ConditionError (with code
   * and path) here.
   */
  function compile(condition, options) {
    var strict = Boolean(options && options.strict);
    var size = conditionSize(condition);
    if (size > MAX_SIZE) {
      throw new ConditionError("The condition is " + size + " bytes long; at most " +
        MAX_SIZE + " are allowed.", "", "too_large");
    }
    var fn = compileNode(condition, "", 0);
    var compiled = function (data) {
      try {
        return exportValue(fn(data === undefined ? null : data, null));
      } catch (error) {
        if (error instanceof EvaluationError) {
          if (strict) {
            error.value = exportValue(error.value);
            throw error;
          }
          return null;
        }
        throw error;
      }
    };
    compiled.condition = condition;
    compiled.strict = strict;
    return compiled;
  }

  var compiledCache = new WeakMap();

  /** Evaluate a condition against data; conditions are kept compiled per object. */
  function evaluate(condition, data, options) {
    var strict = Boolean(options && options.strict);
    if (condition === null || typeof condition !== "object") {
      return compile(condition, options)(data);
    }
    var both = compiledCache.get(condition);
    if (both === undefined) {
      both = {};
      compiledCache.set(condition, both);
    }
    var key = strict ? "strict" : "lenient";
    if (both[key] === undefined) {
      both[key] = compile(condition, options);
    }
    return both[key](data);
  }

  function toDate(text) {
    var value = parseDate(text);
    if (value === null || value.isDateTime) {
      throw new TypeError("Not an ISO date: " + String(text).slice(0, 40));
    }
    return value;
  }

  function toDateTime(text) {
    var value = parseDate(text);
    if (value === null || !value.isDateTime) {
      throw new TypeError("Not an ISO date and time: " + String(text).slice(0, 40));
    }
    return value;
  }

  return {
    compile: compile,
    evaluate: evaluate,
    truthy: truthy,
    isBlank: isBlank,
    strip: pyStrip,
    decimal: decimalFromText,
    date: toDate,
    datetime: toDateTime,
    Decimal: Decimal,
    RuleDate: RuleDate,
    ConditionError: ConditionError,
    EvaluationError: EvaluationError,
    OPERATORS: Object.freeze(Object.keys(OPERATORS).sort()),
    MAX_DEPTH: MAX_DEPTH,
    MAX_SIZE: MAX_SIZE,
  };
});
