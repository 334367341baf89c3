// The registry: one entry per line of families.inc, in the same order as the
// Family enum.
#include "format/family.h"

namespace lowbit {

#define X(ident, name) const FamilyOps& Make##ident##FamilyOps();
#include "lowbit/families.inc"
#undef X

const FamilyOps& OpsFor(Family family) {
  static const FamilyOps* const kTable[] = {
#define X(ident, name) &Make##ident##FamilyOps(),
#include "lowbit/families.inc"
#undef X
  };
  return *kTable[static_cast<int>(family)];
}

std::string_view FamilyName(Family family) {
  static constexpr std::string_view kNames[] = {
#define X(ident, name) name,
#include "lowbit/families.inc"
#undef X
  };
  return kNames[static_cast<int>(family)];
}

}  // namespace lowbit
