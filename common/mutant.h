/* common/mutant.h - mutation testing: a build of the crypto code with a
 * check switched off, which the tests must catch. tests/unit/CMakeLists.txt
 * builds nb_crypto_mutant with NB_MUTANT_SKIP_TAG (every AEAD tag taken as
 * good, as if the MAC check were skipped) and runs test_seal and test_noise
 * against it: each must fail in its tamper tests. Production builds never
 * define it. */
#ifndef NB_COMMON_MUTANT_H
#define NB_COMMON_MUTANT_H

#ifdef NB_MUTANT_SKIP_TAG
#define NB_MUTANT_TAG_OK(ok) ((void)(ok), 1)
#else
#define NB_MUTANT_TAG_OK(ok) (ok)
#endif

#endif
