# An import script that fails while loading.
raise RuntimeError('rp-import-script-failed')
