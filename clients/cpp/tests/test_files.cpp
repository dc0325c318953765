// Boxes and their files: binary round trips, chunks, listings, reset, close.
#include <random>

#include "fixture.hpp"

// every_byte is n bytes holding every value 0..255, NUL and invalid UTF-8 among them.
static std::string every_byte(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = char(i < 256 ? i : rng() & 0xff);
  return s;
}

TEST(file_round_trips) {
  fixture::Server s;
  sandboxd::Box box = s.sb.open_box();
  CHECK(box.id() > 0);

  for (std::size_t n : {0, 1, 2, 3, 4, 255, 256, 257, 100000}) {
    std::string bytes = every_byte(n, unsigned(n));
    CHECK_EQ(box.write_file("blob", bytes), std::int64_t(n));
    CHECK(box.read_file("blob") == bytes);
  }
  // Larger than one read_file reply (8 MiB): read_file reads on.
  std::string big = every_byte((9 << 20) + 5, 9);
  CHECK_EQ(box.write_file("big", big), std::int64_t(big.size()));
  CHECK(box.read_file("big") == big);

  sandboxd::FileChunk chunk = box.read_chunk("big", 10, 100);
  CHECK(chunk.content == big.substr(10, 100));
  CHECK_EQ(chunk.size, std::int64_t(big.size()));
  CHECK(chunk.truncated);
  chunk = box.read_chunk("big", std::int64_t(big.size()) - 3, 100);
  CHECK(chunk.content == big.substr(big.size() - 3));
  CHECK(!chunk.truncated);

  // A program reads what the judge wrote, and the judge reads what it wrote.
  fixture::install_probe(box);
  sandboxd::Program cat = fixture::probe({"cat"});
  cat.stdin_file = "blob";
  cat.stdout_file = "copy";
  CHECK_EQ(box.run(cat).exit_code, std::optional<int>(0));
  CHECK(box.read_file("copy") == box.read_file("blob"));

  // The host path of /space holds the same files.
  std::string host = box.path();
  CHECK(std::filesystem::file_size(host + "/big") == big.size());
}

TEST(list_remove_reset_close) {
  fixture::Server s;
  sandboxd::Box box = s.sb.open_box(sandboxd::BoxOptions{16 << 20, 1000, std::nullopt, std::nullopt});
  box.write_file("src/main.c", "int main(void) { return 0; }\n");
  box.write_file("run.sh", "#!/bin/sh\necho hi\n", 0755);

  std::vector<sandboxd::FileEntry> top = box.list_files();
  REQUIRE(top.size() == 2);
  CHECK_EQ(top[0].name, std::string("run.sh"));
  CHECK(top[0].type == sandboxd::FileType::file);
  CHECK_EQ(top[0].size, std::int64_t(18));
  CHECK_EQ(top[0].mode, 0755);
  CHECK_EQ(top[1].name, std::string("src"));
  CHECK(top[1].type == sandboxd::FileType::dir);
  std::vector<sandboxd::FileEntry> src = box.list_files("src");
  REQUIRE(src.size() == 1);
  CHECK_EQ(src[0].name, std::string("main.c"));
  CHECK_EQ(src[0].mode, 0644);

  sandboxd::Program ln({"/bin/ln", "-s", "/etc/passwd", "link"}, 1s, 4);
  CHECK_EQ(box.run(ln).exit_code, std::optional<int>(0));
  CHECK(box.list_files()[0].type == sandboxd::FileType::symlink);
  box.remove_file("link");

  box.remove_file("src");
  CHECK_EQ(box.list_files().size(), std::size_t(1));
  CHECK_ERROR(box.read_file("src/main.c"), sandboxd::errc::no_such_file);

  box.reset();
  CHECK(box.list_files().empty());

  int id = box.id();
  box.close();
  CHECK_ERROR(s.sb.box(id).list_files(), sandboxd::errc::no_such_box);
}

// A Box from open_box closes its box when it goes; a handle from box(id) does not.
TEST(box_ownership) {
  fixture::Server s;
  int id;
  {
    sandboxd::Box owner = s.sb.open_box();
    id = owner.id();
    owner.write_file("kept", "x");
    {
      sandboxd::Box handle = s.sb.box(id);
      CHECK_EQ(handle.read_file("kept"), std::string("x"));
    }
    CHECK_EQ(owner.read_file("kept"), std::string("x"));
    sandboxd::Box moved = std::move(owner);
    CHECK_EQ(moved.read_file("kept"), std::string("x"));
  }
  CHECK_ERROR(s.sb.box(id).read_file("kept"), sandboxd::errc::no_such_box);
  // The lowest free id is given again.
  CHECK_EQ(s.sb.open_box().id(), id);
}
