"""The shared base: the data that flows between stages (`model`), the one error family (`errors`), strict
addresses and header values, the settings (`config`), DKIM signing, and the only code that opens files for
subscriber data (`database`), reads the user's text (`files`), writes output (`writer`) or checks a port.

Imports: nothing of newsletter outside this package.
"""
