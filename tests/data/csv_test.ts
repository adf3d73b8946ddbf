import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { type CsvOptions, parseCsv } from "../../lib/data/csv.ts";
import { loadCsv } from "../../lib/data/csv_file.ts";
import { DataFormatError, type DataFormatErrorCode } from "../../lib/data/errors.ts";

function f32(values: number[]): number[] {
  return values.map(Math.fround);
}

Deno.test("parseCsv() reads a headed file with the label last", () => {
  const ds = parseCsv("a,b,label\n1,2,x\n3.5,-4e1,y\n0.25,.5,x\n");
  deepStrictEqual(ds.featureNames, ["a", "b"]);
  deepStrictEqual(ds.classNames, ["x", "y"]);
  strictEqual(ds.n, 3);
  strictEqual(ds.features, 2);
  strictEqual(ds.classes, 2);
  ok(ds.x instanceof Float32Array);
  ok(ds.y instanceof Int32Array);
  deepStrictEqual(Array.from(ds.x), [1, 2, 3.5, -40, 0.25, 0.5]);
  deepStrictEqual(Array.from(ds.y), [0, 1, 0]);
});

Deno.test("parseCsv() follows RFC 4180 quoting", () => {
  const text = [
    '"width","note, with comma",class',
    '1,2,"say ""hi"""',
    '"3","4","two\r\nlines"',
    '5,6,"a,b"',
    "",
  ].join("\r\n");
  const ds = parseCsv(text);
  deepStrictEqual(ds.featureNames, ["width", "note, with comma"]);
  deepStrictEqual(Array.from(ds.x), [1, 2, 3, 4, 5, 6]);
  deepStrictEqual(ds.classNames, ["a,b", 'say "hi"', "two\r\nlines"]);
  deepStrictEqual(Array.from(ds.y), [1, 2, 0]);
});

Deno.test("parseCsv() accepts LF, CRLF and CR line ends, a BOM and blank lines", () => {
  for (
    const text of [
      "1,2,a\n3,4,b",
      "1,2,a\r\n3,4,b\r\n",
      "1,2,a\r3,4,b\r",
      "\ufeff1,2,a\n\n3,4,b\n\n\n",
    ]
  ) {
    const ds = parseCsv(text);
    deepStrictEqual(Array.from(ds.x), [1, 2, 3, 4], JSON.stringify(text));
    deepStrictEqual(ds.classNames, ["a", "b"]);
  }
});

Deno.test("parseCsv() trims spaces around cells", () => {
  const ds = parseCsv(" a , b ,c\n 1 ,\t2, yes \n3,4,no");
  deepStrictEqual(ds.featureNames, ["a", "b"]);
  deepStrictEqual(Array.from(ds.x), [1, 2, 3, 4]);
  deepStrictEqual(ds.classNames, ["no", "yes"]);
});

Deno.test("parseCsv() detects a header row", () => {
  const table: { text: string; options?: CsvOptions; header: boolean; names: string[] }[] = [
    { text: "1,2,3\n4,5,6", header: false, names: ["col0", "col1"] },
    { text: "x,y,z\n4,5,6", header: true, names: ["x", "y"] },
    // Only feature cells count: a text label in the first row is data.
    { text: "1,2,cat\n4,5,dog", header: false, names: ["col0", "col1"] },
    { text: "1,2,cat\n4,5,dog", options: { header: true }, header: true, names: ["1", "2"] },
    { text: "y,1,2\nyes,4,5", options: { labelColumn: 0 }, header: false, names: ["col1", "col2"] },
    { text: "k,1,2\nyes,4,5", options: { labelColumn: "k" }, header: true, names: ["1", "2"] },
  ];
  for (const { text, options, header, names } of table) {
    const ds = parseCsv(text, options);
    strictEqual(ds.n, header ? 1 : 2, text);
    deepStrictEqual(ds.featureNames, names, text);
  }
});

Deno.test("parseCsv() picks the label column by name or index", () => {
  const text = "id,species,length\n1,b,0.5\n2,a,1.5\n3,b,2.5\n";
  const byName = parseCsv(text, { labelColumn: "species" });
  const byIndex = parseCsv(text, { labelColumn: 1 });
  for (const ds of [byName, byIndex]) {
    deepStrictEqual(ds.featureNames, ["id", "length"]);
    deepStrictEqual(Array.from(ds.x), [1, 0.5, 2, 1.5, 3, 2.5]);
    deepStrictEqual(ds.classNames, ["a", "b"]);
    deepStrictEqual(Array.from(ds.y), [1, 0, 1]);
  }
});

Deno.test("parseCsv() orders numeric labels by value", () => {
  const ds = parseCsv("1,10\n2,2\n3,-1\n4,2.0\n5,1e1\n6,0\n");
  deepStrictEqual(ds.classNames, ["-1", "0", "2", "10"]);
  deepStrictEqual(Array.from(ds.y), [3, 2, 0, 2, 3, 1]);
});

Deno.test("parseCsv() orders text labels by code unit", () => {
  const ds = parseCsv("1,b\n2,B\n3,a\n4,10\n5,9\n");
  deepStrictEqual(ds.classNames, ["10", "9", "B", "a", "b"]);
  deepStrictEqual(Array.from(ds.y), [4, 2, 3, 0, 1]);
});

Deno.test("parseCsv() uses other delimiters", () => {
  const semicolon = parseCsv('a;b;c\n1.5;2;"x;y"\n', { delimiter: ";" });
  deepStrictEqual(Array.from(semicolon.x), [1.5, 2]);
  deepStrictEqual(semicolon.classNames, ["x;y"]);
  // "1,5" is not a number with ";" as delimiter: the comma stays in the cell.
  throwsFormat(
    () => parseCsv("3;4;y\n1,5;2;x", { delimiter: ";" }),
    "csv-value",
    /^Line 2, column 1: "1,5" is/,
  );
  const tab = parseCsv("1\t2\tx\n3\t4\ty\n", { delimiter: "\t" });
  deepStrictEqual(Array.from(tab.x), [1, 2, 3, 4]);
});

Deno.test("parseCsv() scales features to [0, 1] with minmax", () => {
  // Columns: 2 4 6 -> 0 .5 1; 10 10 10 (constant) -> 0 0 0; -1 3 1 -> 0 1 .5.
  const ds = parseCsv("2,10,-1,a\n4,10,3,b\n6,10,1,a\n", { normalize: "minmax" });
  deepStrictEqual(Array.from(ds.x), [0, 0, 0, 0.5, 0, 1, 1, 0, 0.5]);
});

Deno.test("parseCsv() standardizes features with the population deviation", () => {
  // Column 1: 1 2 3 4, mean 2.5, variance 1.25. Column 2: 7 7 7 7, constant. Column 3: 0 0 0 8,
  // mean 2, variance 12.
  const ds = parseCsv("1,7,0,a\n2,7,0,b\n3,7,0,a\n4,7,8,b\n", { normalize: "standard" });
  const s1 = Math.sqrt(1.25);
  const s3 = Math.sqrt(12);
  const expected = f32([
    ...[-1.5 / s1, 0, -2 / s3],
    ...[-0.5 / s1, 0, -2 / s3],
    ...[0.5 / s1, 0, -2 / s3],
    ...[1.5 / s1, 0, 6 / s3],
  ]);
  deepStrictEqual(Array.from(ds.x), expected);
});

Deno.test("parseCsv() leaves a constant column of fractions at zero", () => {
  const ds = parseCsv("0.1,a\n0.1,b\n0.1,c\n", { normalize: "standard" });
  deepStrictEqual(Array.from(ds.x), [0, 0, 0]);
});

/** Asserts that `fn` throws a DataFormatError with `code` and a message matching `message`. */
function throwsFormat(fn: () => unknown, code: DataFormatErrorCode, message: RegExp): void {
  throws(fn, (error) => {
    ok(error instanceof DataFormatError, `expected a DataFormatError, got ${error}`);
    strictEqual(error.code, code);
    ok(message.test(error.message), `message ${JSON.stringify(error.message)} !~ ${message}`);
    return true;
  });
}

const BAD: { name: string; text: string; code: DataFormatErrorCode; message: RegExp }[] = [
  { name: "empty text", text: "", code: "csv-shape", message: /^CSV text has no rows$/ },
  {
    name: "blank lines only",
    text: "\n\r\n\n",
    code: "csv-shape",
    message: /^CSV text has no rows$/,
  },
  {
    name: "a header without data",
    text: "a,b,c\n",
    code: "csv-shape",
    message: /^CSV has a header but no data rows$/,
  },
  {
    name: "a single column",
    text: "1\n2\n",
    code: "csv-shape",
    message: /^Line 1 has 1 column; a dataset needs features and a label$/,
  },
  {
    name: "a ragged row",
    text: "a,b,c\n1,2,x\n\n3,4\n",
    code: "csv-shape",
    message: /^Line 4 has 2 columns, expected 3$/,
  },
  {
    name: "a row too wide",
    text: "1,2,x\n3,4,5,y\n",
    code: "csv-shape",
    message: /^Line 2 has 4 columns, expected 3$/,
  },
  {
    name: "a non-numeric feature",
    text: "a,b,c\n1,2,x\n3,four,y\n",
    code: "csv-value",
    message: /^Line 3, column 2 \("b"\): "four" is not a number$/,
  },
  {
    name: "an empty feature",
    text: "1,,x\n",
    code: "csv-value",
    message: /^Line 1, column 2: "" is not a number$/,
  },
  {
    name: "a feature beyond float32",
    text: "1,1e39,x\n",
    code: "csv-value",
    message: /^Line 1, column 2: 1e39 is outside the float32 range$/,
  },
  {
    name: "NaN as a feature",
    text: "1,2,x\nNaN,1,y\n",
    code: "csv-value",
    message: /^Line 2, column 1: "NaN" is not a number$/,
  },
  {
    name: "an empty label",
    text: "1,2,x\n3,4, \n",
    code: "csv-value",
    message: /^Line 2, column 3: empty label$/,
  },
  {
    name: "an unterminated quote",
    text: '1,2,x\n3,"4\n5,y\n',
    code: "csv-syntax",
    message: /^Line 2, column 2: unterminated quoted field$/,
  },
  {
    name: "text after a closing quote",
    text: 'a,b,c\n"1\n"x,2,y\n',
    code: "csv-syntax",
    message: /^Line 3, column 1: unexpected text after a closing quote$/,
  },
  {
    name: "a quote inside an unquoted field",
    text: '1,2,x\n3,4,5"6\n',
    code: "csv-syntax",
    message: /^Line 2, column 3: quote inside an unquoted field$/,
  },
  {
    name: "a ragged row after a multi-line field",
    text: 'a,b,c\n1,2,"x\ny"\n3,4\n',
    code: "csv-shape",
    message: /^Line 4 has 2 columns, expected 3$/,
  },
];

for (const { name, text, code, message } of BAD) {
  Deno.test(`parseCsv() rejects ${name}`, () => {
    throwsFormat(() => parseCsv(text), code, message);
  });
}

Deno.test("parseCsv() reads a forced first row as data and rejects its text", () => {
  throwsFormat(
    () => parseCsv("x,y,z\n1,2,3\n", { header: false }),
    "csv-value",
    /^Line 1, column 1: "x" is not a number$/,
  );
});

Deno.test("parseCsv() rejects bad options", () => {
  const text = "a,b,c\n1,2,x\n";
  const cases: [CsvOptions, Error][] = [
    [
      { delimiter: "" },
      new RangeError('Delimiter must be one character other than a quote, CR and LF, got ""'),
    ],
    [
      { delimiter: '"' },
      new RangeError(`Delimiter must be one character other than a quote, CR and LF, got "\\""`),
    ],
    [
      { delimiter: ";;" },
      new RangeError('Delimiter must be one character other than a quote, CR and LF, got ";;"'),
    ],
    [
      { header: "yes" as "auto" },
      new RangeError('Header must be true, false or "auto", got "yes"'),
    ],
    [
      { normalize: "zscore" as "standard" },
      new RangeError('Normalize must be "none", "minmax" or "standard", got "zscore"'),
    ],
    [
      { labelColumn: -1 },
      new RangeError("Label column index must be a non-negative integer, got -1"),
    ],
    [
      { labelColumn: 1.5 },
      new RangeError("Label column index must be a non-negative integer, got 1.5"),
    ],
    [{ labelColumn: 3 }, new RangeError("Label column 3 is outside the 3 columns")],
    [
      { labelColumn: true as unknown as number },
      new TypeError("Label column must be a name or a zero-based index"),
    ],
    [{ labelColumn: "d" }, new RangeError('Label column "d" is not in the header')],
    [
      { labelColumn: "a", header: false },
      new RangeError('Label column "a" is a name, but the CSV has no header'),
    ],
  ];
  for (const [options, error] of cases) throws(() => parseCsv(text, options), error);
  throws(() => parseCsv(42 as unknown as string), new TypeError("CSV text must be a string"));
});

Deno.test("loadCsv() reads a file and names it in errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ok.csv`, "x,label\n1,a\n3,b\n");
    const ds = await loadCsv(`${dir}/ok.csv`, { normalize: "minmax" });
    deepStrictEqual(Array.from(ds.x), [0, 1]);
    deepStrictEqual(ds.classNames, ["a", "b"]);
    await Deno.writeTextFile(`${dir}/bad.csv`, "x,label\n1,a\n3\n");
    await rejects(loadCsv(`${dir}/bad.csv`), (error) => {
      ok(error instanceof DataFormatError);
      strictEqual(error.code, "csv-shape");
      strictEqual(error.message, `${dir}/bad.csv: Line 3 has 1 columns, expected 2`);
      return true;
    });
    await rejects(loadCsv(`${dir}/none.csv`), (error) => {
      ok(error instanceof Deno.errors.NotFound);
      strictEqual(error.message, `CSV file not found: ${dir}/none.csv`);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
