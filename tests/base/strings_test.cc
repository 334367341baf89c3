#include "base/strings.h"

#include <gtest/gtest.h>

namespace lowbit {
namespace {

TEST(StringsTest, IntLists) {
  EXPECT_EQ(*ParseIntList("2,4", 1, 8, "--bits"), (std::vector<int>{2, 4}));
  EXPECT_EQ(*ParseIntList("2..5", 1, 8, "--bits"), (std::vector<int>{2, 3, 4, 5}));
  EXPECT_EQ(*ParseIntList("8,1..2,2", 1, 8, "--bits"), (std::vector<int>{1, 2, 8}));
  const Result<std::vector<int>> bad = ParseIntList("2..9", 1, 8, "--bits");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "--bits: 9 is out of range 1..8");
  EXPECT_FALSE(ParseIntList("", 1, 8, "--bits").ok());
  EXPECT_FALSE(ParseIntList("5..2", 1, 8, "--bits").ok());
  EXPECT_FALSE(ParseIntList("a", 1, 8, "--bits").ok());
  EXPECT_FALSE(ParseIntList("2,", 1, 8, "--bits").ok());
}

TEST(StringsTest, Numbers) {
  EXPECT_EQ(*ParseInt("-12", "n"), -12);
  EXPECT_FALSE(ParseInt("12x", "n").ok());
  EXPECT_DOUBLE_EQ(*ParseDouble("0.5", "p"), 0.5);
  EXPECT_FALSE(ParseDouble("nan", "p").ok());
  EXPECT_FALSE(ParseDouble("", "p").ok());
}

}  // namespace
}  // namespace lowbit
