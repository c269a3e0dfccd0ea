#include <krb5.h>
int main(void) { return 2; }
