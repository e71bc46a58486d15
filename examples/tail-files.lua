-- Tails the *.log files under /var/log (any depth; rotated *.gz left out) and writes each
-- line as logfmt to stdout: local.file_match finds them (`local_` in Lua, `local` being a
-- keyword), loki.source.file reads them (positions kept under --storage.path).
local_.file_match "logs" {
  path_targets = { { __path__ = "/var/log/**/*.log", __path_exclude__ = "**/*.gz", job = "varlog" } },
}

loki.source.file "logs" {
  targets    = local_.file_match.logs.targets,
  forward_to = { loki.echo.out.receiver },
}

loki.echo "out" {}
