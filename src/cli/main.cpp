// imgsim: tells how alike images are (docs/cli.md).
//
//   imgsim compare A B | embed PATH... -o FILE | index build|add|remove|info | search INDEX Q...
//          | dedup DIR | train | eval
//
// Errors print one line "imgsim: <message>" on stderr: exit status 1 for failures (bad files,
// bad models), 2 for usage errors (unknown option, missing argument).
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <new>
#include <string>

#include "common.hpp"

#ifndef IMGSIM_VERSION
#define IMGSIM_VERSION "unknown"
#endif

namespace {

// One line, whatever the message holds.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "imgsim: tells how alike images are, with a hand-written CNN.\n"
      "Run `imgsim <command> --help` for a command's options; docs/cli.md has examples.",
      "imgsim"};
  app.set_version_flag("--version", std::string("imgsim ") + IMGSIM_VERSION);
  app.require_subcommand(1);
  using namespace imgsim::cli;
  add_compare_command(app);
  add_embed_command(app);
  add_index_command(app);
  add_search_command(app);
  add_dedup_command(app);
  add_train_command(app);
  add_eval_command(app);

  // CLI11 would report a mistyped command as a missing one.
  bool known = false;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    known = known || (argc > 1 && sub->get_name() == argv[1]);
  if (argc > 1 && argv[1][0] != '-' && !known) {
    std::cerr << "imgsim: unknown command '" << one_line(argv[1]) << "' (see `imgsim --help`)\n";
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    // Name the subcommand whose help would explain.
    std::string sub;
    for (const CLI::App* s = &app; s;) {
      const auto subs = s->get_subcommands();
      if (subs.empty()) break;
      s = subs.front();
      sub += " " + s->get_name();
    }
    std::cerr << "imgsim: " << one_line(e.what()) << " (see `imgsim" << sub << " --help`)\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "imgsim: " << one_line(e.what()) << '\n';
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "imgsim: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "imgsim: " << one_line(e.what()) << '\n';
    return 1;
  }
  return 0;
}
