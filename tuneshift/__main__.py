from tuneshift.cli import main

main()
