import { match, ok, strictEqual } from "node:assert/strict";

const root = new URL("../", import.meta.url);
const readme = await Deno.readTextFile(new URL("README.md", root));

Deno.test("README's TypeScript examples run", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--doc", "README.md"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  strictEqual(code, 0, output);
  match(output, /Chain\(Dense\(10 => 5, relu\), Dense\(5 => 2\), softmax\) 6 67/);
  match(output, /round 3: test accuracy 0\.\d+/);
});

Deno.test("README's commands are tasks of deno.json", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  const tasks = [...readme.matchAll(/deno(?:@[\d.]+)? task ([\w:-]+)/g)].map((m) => m[1]!);
  ok(tasks.includes("demo") && tasks.includes("test"));
  for (const task of tasks) ok(task in config.tasks, `task ${task} is not in deno.json`);
  match(readme, /npx -y deno@2\.9\.6 task demo/);
  match(readme, /npx -y deno@2\.9\.6 task test/);
});
