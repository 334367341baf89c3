#include "base/npy.h"

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

namespace lowbit {
namespace {

std::string NpyBytes(const std::string& descr, const std::string& shape, const std::string& data) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header + data;
}

TEST(NpyTest, ReadsDtypesAndShapes) {
  const float f[] = {1.5f, -2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  Result<NpyArray> a = ParseNpy(NpyBytes("<f4", "(2, 3)", std::string(reinterpret_cast<const char*>(f), 24)), "a.npy");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->data[1], -2.0f);
  const double d[] = {0.25, -7};
  a = ParseNpy(NpyBytes("<f8", "(2,)", std::string(reinterpret_cast<const char*>(d), 16)), "d.npy");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(a->data[1], -7.0f);
  const unsigned char u[] = {0, 255};
  a = ParseNpy(NpyBytes("|u1", "(2,)", std::string(reinterpret_cast<const char*>(u), 2)), "u.npy");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->data[1], 255.0f);
}

TEST(NpyTest, MalformedFilesAreRefusedWithTheirName) {
  const float f[] = {1, 2, 3};
  const std::string data(reinterpret_cast<const char*>(f), 12);
  struct Case {
    std::string bytes, expect;
  } cases[] = {
      {"not numpy at all", "bad magic"},
      {NpyBytes("<f4", "(2, 3)", data), "truncated .npy data"},
      {NpyBytes(">f4", "(3,)", data), "dtype '>f4'"},
      {NpyBytes("<c8", "(3,)", data), "dtype '<c8'"},
      {NpyBytes("<f4", "(3, x)", data), "malformed .npy shape"},
      {NpyBytes("<f4", "(3,)", data).substr(0, 40), "truncated .npy header"},
  };
  for (const Case& c : cases) {
    const Result<NpyArray> r = ParseNpy(c.bytes, "bad.npy");
    ASSERT_FALSE(r.ok()) << c.expect;
    EXPECT_NE(r.status().message().find("bad.npy"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(ReadNpy("/nonexistent/x.npy").ok());
}

TEST(NpyTest, WriteThenReadRoundTrips) {
  const std::string path = ::testing::TempDir() + "/lowbit_npy_test.npy";
  const float v[] = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(WriteNpy(path, {3, 2}, v).ok());
  Result<NpyArray> a = ReadNpy(path);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(a->data, std::vector<float>(v, v + 6));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace lowbit
