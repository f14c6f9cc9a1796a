/**
 * ACL tokens: `weft acl token create|list|delete`. Creating a token is the
 * only time its secret is shown; the control plane stores only its hash.
 */
import type { Command } from "commander";
import { type ClientFlags, clientFrom, withClientOptions } from "../client-options.js";
import type { Io } from "../io.js";
import { json, table } from "../output.js";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function registerAclCommands(program: Command, io: Io): void {
  const acl = program.command("acl").summary("manage ACL tokens").description("Manage ACL tokens.");
  const token = acl.command("token").summary("create, list and delete tokens").description("ACL tokens.");

  withClientOptions(
    token
      .command("create")
      .summary("create a token")
      .description(
        "Create a token with one or more policies: operator, read, service:NAME:write,\n" +
          "service:NAME:read. The secret is printed once and cannot be read back.",
      )
      .requiredOption("--policy <policy>", "a policy (repeat for several)", collect)
      .option("--description <text>", "what the token is for")
      .option("--json", "print the created token as JSON"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft acl token create --policy service:api:write --description 'api sidecars'\n  $ export WEFT_TOKEN=$(weft acl token create --policy read --json | jq -r .secretId)\n",
    )
    .action(async (opts: ClientFlags & { policy: string[]; description?: string; json?: boolean }) => {
      const t = await clientFrom(opts, io.cwd).createToken({
        policies: opts.policy,
        description: opts.description,
      });
      if (opts.json) {
        io.out.write(json(t));
        return;
      }
      io.out.write(
        table(
          ["FIELD", "VALUE"],
          [
            ["AccessorID", t.accessorId],
            ["SecretID", t.secretId],
            ["Description", t.description ?? "-"],
            ["Policies", t.policies.join(",")],
          ],
        ).replace(/^FIELD.*\n/, ""),
      );
    });

  withClientOptions(
    token.command("list").summary("list tokens (without secrets)").option("--json", "print as JSON"),
  )
    .addHelpText("after", "\nExamples:\n  $ weft acl token list\n")
    .action(async (opts: ClientFlags & { json?: boolean }) => {
      const tokens = await clientFrom(opts, io.cwd).listTokens();
      if (opts.json) {
        io.out.write(json(tokens));
        return;
      }
      io.out.write(
        table(
          ["ACCESSOR ID", "POLICIES", "DESCRIPTION"],
          tokens.map((t) => [t.accessorId, t.policies.join(","), t.description || "-"]),
        ),
      );
    });

  withClientOptions(
    token.command("delete").summary("revoke a token").argument("<accessor-id>", "the token's accessor id"),
  )
    .addHelpText("after", "\nExamples:\n  $ weft acl token delete 6a1f0c52-...\n")
    .action(async (id: string, opts: ClientFlags) => {
      await clientFrom(opts, io.cwd).deleteToken(id);
      io.out.write(`token ${id} deleted\n`);
    });
}
